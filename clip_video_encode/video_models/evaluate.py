"""The evaluation protocols on a dataset: zero-shot classification, text-video retrieval and
linear probes. Each streams the dataset batch by batch and keeps only per-video results
(class scores, pooled embeddings), so memory grows with the number of videos times the
embedding size, never with their frames.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass

import numpy as np
import torch

from ..vectors import normalize
from .aggregators import load_aggregator
from .data import TextCache, iter_batches
from .metrics import (
    confused_pairs,
    frame_softmax_scores,
    mean_class_accuracy,
    retrieval_metrics,
    topk_accuracy,
)

# LAION's video-clip zero-shot templates: 4 x 7 = 28 prompts per class.
KINETICS_TEMPLATES = [
    f"{prefix} {subject}."
    for prefix in ("a photo of", "a video of", "an example of", "a demonstration of")
    for subject in ("{}", "a person {}", "a person using {}", "a person doing {}",
                    "a person during {}", "a person performing {}", "a person practicing {}")
]  # fmt: skip


def read_templates(spec: str) -> list[str]:
    """``kinetics`` (the 28 above), ``none`` (the class name alone) or a file with one
    template per line, each holding ``{}``."""
    if spec == "kinetics":
        return list(KINETICS_TEMPLATES)
    if spec == "none":
        return ["{}"]
    with open(spec, encoding="utf-8") as f:
        templates = [line.strip() for line in f if line.strip()]
    bad = [t for t in templates if "{}" not in t]
    if not templates or bad:
        raise ValueError(f"{spec}: every template needs a {{}} for the class name ({bad[:1]})")
    return templates


def class_embeddings(encode_text: Callable[[list[str]], np.ndarray], names: list[str],
                     templates: list[str]) -> np.ndarray:  # fmt: skip
    """Per class: every template's text embedding, normalised, averaged, normalised."""
    out = []
    for name in names:
        texts = [t.replace("{}", name) for t in templates]
        out.append(normalize(normalize(encode_text(texts)).mean(0)))
    return np.stack(out).astype(np.float32)


def read_labels(path: str) -> list[str]:
    with open(path, encoding="utf-8") as f:
        names = [line.strip() for line in f if line.strip()]
    if len(set(names)) != len(names):
        raise ValueError(f"{path}: a class name is listed twice")
    return names


@dataclass
class Pooler:
    """Pools padded batches with an aggregator, on a device."""

    spec: str
    dim: int
    length: int
    device: str = "cpu"

    def __post_init__(self) -> None:
        self.model = load_aggregator(self.spec, self.dim, self.length, self.device)

    def __call__(self, frames: np.ndarray, mask: np.ndarray) -> np.ndarray:
        with torch.inference_mode():
            x = torch.from_numpy(frames.astype(np.float32)).to(self.device)
            m = torch.from_numpy(mask).to(self.device)
            return self.model(x, m).cpu().numpy()


def label_of(meta: dict, column: str) -> str | None:
    value = meta.get(column)
    if isinstance(value, list):
        value = value[0] if value else None
    return None if value in (None, "") else str(value).strip()


def zeroshot(dataset: str, classes: np.ndarray, names: list[str], label_column: str,
             score: str, pooler: Pooler | None, length: int, batch: int = 512) -> dict:  # fmt: skip
    """Zero-shot classification of every video that succeeded and has a known label. Per
    video only its label, its prediction and the rank of its label are kept: memory does not
    grow with the classes times the videos."""
    index = {n: i for i, n in enumerate(names)}
    labels, predictions, label_ranks, unknown = [], [], [], 0
    aggregator = pooler.spec if score == "pooled" else None  # frame-softmax: every frame
    for videos, _ in iter_batches(dataset, length, batch, aggregator=aggregator):
        keep, y = [], []
        for i, meta in enumerate(videos.metas):
            label = label_of(meta, label_column)
            if label in index:
                keep.append(i)
                y.append(index[label])
            else:
                unknown += 1
        if not keep:
            continue
        frames, mask = videos.frames[keep], videos.mask[keep]
        if score == "frame-softmax":
            s = frame_softmax_scores(frames, mask, classes)
        else:
            s = pooler(frames, mask) @ classes.T
        y = np.asarray(y)
        labels.append(y)
        predictions.append(s.argmax(1))
        # Classes scored strictly above the label (a tie counts for the label).
        label_ranks.append((s > s[np.arange(len(y)), y][:, None]).sum(1))
    if not labels:
        raise ValueError(
            f"no video has a {label_column!r} among the {len(names)} classes: check"
            " --label-column (and --labels)"
        )
    y, predicted, rank = np.concatenate(labels), np.concatenate(predictions), np.concatenate(
        label_ranks)  # fmt: skip
    k = len(names)
    return {
        "n": int(len(y)), "classes": k, "skipped_unknown_label": unknown,
        "top1": float((rank < 1).mean()), "top5": float((rank < 5).mean()),
        "mean_class_acc": mean_class_accuracy(predicted, y, k),
        "chance": {"top1": 1 / k, "top5": min(1.0, 5 / k), "mean_class_acc": 1 / k},
        "confused": confused_pairs(predicted, y, names),
    }  # fmt: skip


def retrieval(dataset: str, cache: TextCache, column: str, pooler: Pooler, length: int,
              batch: int = 512, split: str | None = None) -> dict:  # fmt: skip
    """Text-to-video and video-to-text retrieval over the videos that succeeded (of one
    split when ``split`` is given), with every caption of each video."""
    videos_out, texts, text_video = [], [], []
    loaded: dict[str, tuple[np.ndarray, np.ndarray]] = {}
    keep = None if split is None else (lambda m: str(m.get("split")) == split)
    n = 0
    for videos, where in iter_batches(dataset, length, batch, keep, aggregator=pooler.spec):
        videos_out.append(pooler(videos.frames, videos.mask))
        for shard, row in where:
            if shard not in loaded:
                loaded = {shard: cache.shard(shard, column)}  # one shard's texts at a time
            embeddings, offsets = loaded[shard]
            lo, hi = offsets[row], offsets[row + 1]
            texts.append(embeddings[lo:hi])
            text_video.extend([n] * int(hi - lo))
            n += 1
    if not text_video:
        raise ValueError(f"no video with a {column!r} text: nothing to retrieve")
    v = np.concatenate(videos_out)
    t = normalize(np.concatenate(texts))
    return retrieval_metrics(t @ v.T, np.asarray(text_video))


def pooled(dataset: str, pooler: Pooler, label_column: str, length: int,
           keep=None, batch: int = 512) -> tuple[np.ndarray, list[str]]:  # fmt: skip
    """Pooled embeddings and labels of the videos that have a label."""
    xs, ys = [], []
    for videos, _ in iter_batches(dataset, length, batch, keep, aggregator=pooler.spec):
        labels = [label_of(m, label_column) for m in videos.metas]
        keep_rows = [i for i, label in enumerate(labels) if label is not None]
        if keep_rows:
            xs.append(pooler(videos.frames[keep_rows], videos.mask[keep_rows]))
            ys.extend(labels[i] for i in keep_rows)
    if not ys:
        raise ValueError(f"{dataset}: no video with a {label_column!r}")
    return np.concatenate(xs), ys


def linear_probe(train: tuple[np.ndarray, list[str]], val: tuple[np.ndarray, list[str]],
                 seed: int = 0, device: str = "cpu") -> dict:  # fmt: skip
    """Multinomial logistic regression on pooled embeddings: the L2 strength is chosen on a
    held-out fifth of TRAIN (a sweep over 1e-6 .. 1e-1), then the model is fitted on all of
    TRAIN and scored on VAL."""
    names = sorted(set(train[1]))
    index = {n: i for i, n in enumerate(names)}
    x, y = train[0], np.asarray([index[n] for n in train[1]])
    keep = [i for i, n in enumerate(val[1]) if n in index]
    xv, yv = val[0][keep], np.asarray([index[val[1][i]] for i in keep])
    rng = np.random.default_rng(seed)
    order = rng.permutation(len(y))
    held = order[: max(1, len(y) // 5)]
    fit = order[max(1, len(y) // 5) :]
    sweep = {}
    for strength in (1e-6, 1e-5, 1e-4, 1e-3, 1e-2, 1e-1):
        w = _logistic(x[fit], y[fit], len(names), strength, seed, device)
        sweep[strength] = topk_accuracy(_logits(x[held], w), y[held], 1)
    best = max(sweep, key=lambda s: (sweep[s], s))  # ties: the stronger regularisation
    w = _logistic(x, y, len(names), best, seed, device)
    scores = _logits(xv, w)
    k = len(names)
    return {
        "n": int(len(yv)), "n_train": int(len(y)), "classes": k,
        "skipped_unknown_label": len(val[1]) - len(keep),
        "top1": topk_accuracy(scores, yv, 1), "top5": topk_accuracy(scores, yv, 5),
        "mean_class_acc": mean_class_accuracy(scores.argmax(1), yv, k),
        "l2": best, "sweep_top1": {f"{s:g}": v for s, v in sweep.items()},
        "chance": {"top1": 1 / k, "top5": min(1.0, 5 / k), "mean_class_acc": 1 / k},
    }  # fmt: skip


def _logistic(x: np.ndarray, y: np.ndarray, k: int, strength: float, seed: int,
              device: str) -> tuple[np.ndarray, np.ndarray]:  # fmt: skip
    """Full-batch L-BFGS on the mean cross-entropy plus ``strength`` x |W|^2."""
    torch.manual_seed(seed)
    xt = torch.from_numpy(np.asarray(x, np.float32)).to(device)
    yt = torch.from_numpy(y).long().to(device)
    w = torch.zeros(xt.shape[1], k, device=device, requires_grad=True)
    b = torch.zeros(k, device=device, requires_grad=True)
    opt = torch.optim.LBFGS([w, b], lr=1.0, max_iter=200, history_size=20,
                            line_search_fn="strong_wolfe")  # fmt: skip

    def closure():
        opt.zero_grad()
        loss = torch.nn.functional.cross_entropy(xt @ w + b, yt) + strength * (w * w).sum()
        loss.backward()
        return loss

    opt.step(closure)
    return w.detach().cpu().numpy(), b.detach().cpu().numpy()


def _logits(x: np.ndarray, wb: tuple[np.ndarray, np.ndarray]) -> np.ndarray:
    return np.asarray(x, np.float32) @ wb[0] + wb[1]
