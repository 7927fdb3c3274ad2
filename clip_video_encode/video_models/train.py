"""``clip-video-train``: train an aggregator contrastively against the captions.

Videos are pooled by the aggregator; captions are embedded once by the dataset's own text
tower (cached beside the dataset); the loss is the symmetric InfoNCE of CLIP with a learnable
temperature. Held out for validation: the rows whose ``split`` is a validation split
(``val``, ``validation``, ``test``, ...), or, in a dataset without one, a fixed share of keys
chosen by a hash of the key (the same on every run).

Runs are seeded and deterministic on a given machine: shard order and the shuffle buffer
come from ``(seed, epoch)`` and dropout from a seed per epoch, and a checkpoint written after
every epoch carries the model, the optimizer, the schedule and the history, so a run stopped
and resumed ends with the same weights as one that was not (tested).
"""

from __future__ import annotations

import csv
import dataclasses
import hashlib
import math
import os
import time
from collections.abc import Iterator
from dataclasses import dataclass

import fsspec
import numpy as np
import pyarrow.parquet as pq
import torch
import torch.nn.functional as F
from tqdm import tqdm

from ..read import pad_or_truncate, shard_urls
from ..vectors import normalize
from .aggregators import LEARNED, AggregatorConfig, build
from .data import VALIDATION_SPLITS, TextCache, iter_shard, shard_name
from .metrics import retrieval_metrics


@dataclass(frozen=True)
class TrainOptions:
    aggregator: str = "attention"
    epochs: int = 10
    batch_size: int = 256
    lr: float = 1e-3
    weight_decay: float = 0.05
    max_frames: int = 32
    seed: int = 0
    layers: int = 2
    heads: int = 0
    queries: int = 4
    dropout: float = 0.1
    caption_column: str = "caption"
    val_fraction: float = 0.05  # of keys, when the dataset has no validation split
    shuffle_buffer: int = 10_000


# Options that may change when a run is resumed (more epochs); the others must match.
_RESUMABLE = ("epochs",)


class CheckpointMismatch(ValueError):
    """``--out`` holds a checkpoint of another training run."""


@dataclass
class Plan:
    """Which rows of which shards train and which validate (from the parquets alone)."""

    urls: list[str]
    train: dict[str, set[int]]
    val: dict[str, set[int]]
    by_split: bool  # validation from the split column (else: a share of keys)

    @property
    def n_train(self) -> int:
        return sum(len(v) for v in self.train.values())

    @property
    def n_val(self) -> int:
        return sum(len(v) for v in self.val.values())


def plan_rows(dataset: str, val_fraction: float) -> Plan:
    fs, path = fsspec.core.url_to_fs(dataset)
    urls = shard_urls(dataset)
    columns: dict[str, dict[str, list]] = {}
    for url in urls:
        name = shard_name(url)
        with fs.open(f"{path.rstrip('/')}/{name}.parquet", "rb") as f:
            table = pq.read_table(f, columns=["key", "status", "split"])
        columns[name] = table.to_pydict()
    by_split = any(str(s).lower() in VALIDATION_SPLITS for c in columns.values()
                   for s in c["split"] if s is not None)  # fmt: skip
    train: dict[str, set[int]] = {}
    val: dict[str, set[int]] = {}
    for name, c in columns.items():
        for row, (key, status, split) in enumerate(zip(c["key"], c["status"], c["split"],
                                                       strict=True)):  # fmt: skip
            if status != "success":
                continue
            if by_split:
                held = split is not None and str(split).lower() in VALIDATION_SPLITS
            else:
                held = int(hashlib.sha1(key.encode()).hexdigest()[:8], 16) % 10_000 < (
                    val_fraction * 10_000)  # fmt: skip
            (val if held else train).setdefault(name, set()).add(row)
    return Plan(urls, train, val, by_split)


def stream(plan: Plan, rows: dict[str, set[int]], cache: TextCache, options: TrainOptions,
           rng: np.random.Generator | None) -> Iterator[tuple]:  # fmt: skip
    """``(frames, mask, text embedding, key)`` of the chosen rows: shards in a seeded order
    through a seeded shuffle buffer (``rng``), or in dataset order (``rng`` None). A row with
    several captions gets one of them at random (the first without ``rng``)."""
    urls = [u for u in plan.urls if shard_name(u) in rows]
    if rng is not None:
        urls = [urls[i] for i in rng.permutation(len(urls))]
    buffer: list = []
    for url in urls:
        name = shard_name(url)
        wanted = rows[name]
        texts, offsets = cache.shard(name, options.caption_column)
        for row, key, embeddings, _ in iter_shard(url):
            if row not in wanted or embeddings is None or not len(embeddings):
                continue
            lo, hi = int(offsets[row]), int(offsets[row + 1])
            if hi == lo:
                continue  # no caption: nothing to contrast with
            pick = lo if rng is None else lo + int(rng.integers(hi - lo))
            frames, mask = pad_or_truncate(embeddings, options.max_frames)
            item = (frames, mask, texts[pick], key)
            if rng is None:
                yield item
                continue
            buffer.append(item)
            if len(buffer) >= options.shuffle_buffer:
                yield _pop_random(buffer, rng)
    while buffer:
        yield _pop_random(buffer, rng)


def captioned(plan: Plan, cache: TextCache, column: str) -> int:
    """The training rows :func:`stream` yields: those with at least one caption (the text
    cache's offsets say, without reading a frame)."""
    n = 0
    for name, rows in plan.train.items():
        offsets = cache.shard(name, column)[1]
        n += sum(1 for row in rows if offsets[row + 1] > offsets[row])
    return n


def batch_count(items: int, size: int) -> int:
    """The batches :func:`batches` makes of ``items``: the full ones, and the rest when it
    holds two or more. The cosine schedule is planned over exactly these steps: planned
    over the full batches alone, it reached 0 epochs early (30 videos in batches of 16: 2
    steps an epoch, 1 planned) and the rest trained at lr 0."""
    full, rest = divmod(items, size)
    return full + (1 if rest >= 2 else 0)


def _pop_random(buffer: list, rng: np.random.Generator):
    i = int(rng.integers(len(buffer)))
    buffer[i], buffer[-1] = buffer[-1], buffer[i]
    return buffer.pop()


def batches(items: Iterator[tuple], size: int) -> Iterator[tuple[torch.Tensor, ...]]:
    chunk: list = []
    for item in items:
        chunk.append(item)
        if len(chunk) == size:
            yield _collate(chunk)
            chunk = []
    if len(chunk) >= 2:  # a contrastive batch of one teaches nothing
        yield _collate(chunk)


def _collate(chunk: list) -> tuple[torch.Tensor, ...]:
    frames = torch.from_numpy(np.stack([c[0] for c in chunk]).astype(np.float32))
    mask = torch.from_numpy(np.stack([c[1] for c in chunk]))
    text = torch.from_numpy(normalize(np.stack([c[2] for c in chunk])))
    return frames, mask, text


class Contrastive(torch.nn.Module):
    """The aggregator and CLIP's learnable temperature (as a log scale, capped at 100)."""

    def __init__(self, aggregator: torch.nn.Module) -> None:
        super().__init__()
        self.aggregator = aggregator
        self.log_scale = torch.nn.Parameter(torch.tensor(math.log(1 / 0.07)))

    def loss(self, frames, mask, text) -> torch.Tensor:
        videos = self.aggregator(frames, mask)
        logits = self.log_scale.clamp(max=math.log(100)).exp() * videos @ text.T
        target = torch.arange(len(videos), device=videos.device)
        return (F.cross_entropy(logits, target) + F.cross_entropy(logits.T, target)) / 2


def train(dataset: str, out: str, options: TrainOptions, cache: TextCache, dim: int,
          device: str = "cpu", progress: bool | None = None, restart: bool = False,
          log=print, stop_after: int | None = None) -> dict:  # fmt: skip
    """Train (or resume) and return the last history entry. Writes ``out`` after every
    epoch, ``out`` with ``.csv`` (the history) and ``.png`` (its plot) beside it.
    ``stop_after``: end this run after that epoch (a job with a time limit trains in slices;
    the next run resumes)."""
    if options.aggregator not in LEARNED:
        raise ValueError(f"--aggregator {options.aggregator}: one of {', '.join(LEARNED)}")
    plan = plan_rows(dataset, options.val_fraction)
    if plan.n_train < 2:
        raise ValueError(f"{dataset}: {plan.n_train} training videos; at least 2 are needed")
    cache.fill(options.caption_column, progress)
    n_train = captioned(plan, cache, options.caption_column)
    if n_train < 2:
        raise ValueError(
            f"{dataset}: {n_train} training videos have a {options.caption_column!r}; at least"
            " 2 are needed (give the caption column with --caption-column)"
        )
    config = AggregatorConfig(options.aggregator, dim, options.max_frames, options.layers,
                              options.heads, options.queries, options.dropout)  # fmt: skip
    torch.use_deterministic_algorithms(True, warn_only=True)
    torch.manual_seed(options.seed)
    model = Contrastive(build(config)).to(device)
    optimizer = torch.optim.AdamW(model.parameters(), lr=options.lr,
                                  weight_decay=options.weight_decay)  # fmt: skip
    steps_per_epoch = batch_count(n_train, options.batch_size)
    total = steps_per_epoch * options.epochs
    schedule = torch.optim.lr_scheduler.LambdaLR(
        optimizer, lambda step: 0.5 * (1 + math.cos(math.pi * min(step, total) / total))
    )
    history: list[dict] = []
    start = 0
    if os.path.exists(out) and not restart:
        state = torch.load(out, map_location="cpu", weights_only=False)
        _check_resumable(state, options, out)
        model.load_state_dict(state["model"])
        optimizer.load_state_dict(state["optimizer"])
        schedule.load_state_dict(state["schedule"])
        history, start = state["history"], state["epoch"]
        log(f"resuming {out} after epoch {start}")
    val = _validation_set(plan, cache, options)
    baseline = _evaluate_mean(val) if val else None
    if baseline and not history:
        log(f"mean pooling on the {len(val[0])} validation videos: t2v R@1"
            f" {baseline['t2v_r1']:.3f}, R@5 {baseline['t2v_r5']:.3f}")  # fmt: skip
    last = min(options.epochs, stop_after or options.epochs)
    for epoch in range(start + 1, last + 1):
        began = time.perf_counter()
        torch.manual_seed(options.seed * 100_003 + epoch)  # dropout: the same on a resume
        rng = np.random.default_rng([options.seed, epoch])
        model.train()
        losses = []
        bar = tqdm(total=steps_per_epoch, desc=f"epoch {epoch}/{options.epochs}", unit="step",
                   disable=None if progress is None else not progress)  # fmt: skip
        for frames, mask, text in batches(stream(plan, plan.train, cache, options, rng),
                                          options.batch_size):  # fmt: skip
            loss = model.loss(frames.to(device), mask.to(device), text.to(device))
            optimizer.zero_grad()
            loss.backward()
            optimizer.step()
            schedule.step()
            losses.append(loss.item())
            bar.update(1)
            bar.set_postfix(loss=f"{losses[-1]:.3f}")
        bar.close()
        entry = {"epoch": epoch, "steps": len(losses),
                 "train_loss": float(np.mean(losses)) if losses else float("nan")}  # fmt: skip
        if val:
            entry.update(_evaluate(model, val, options.batch_size, device))
            entry.update({f"mean_{k}": baseline[k] for k in ("t2v_r1", "t2v_r5")})
        entry["temperature"] = 1 / model.log_scale.detach().clamp(max=math.log(100)).exp().item()
        entry["lr"] = schedule.get_last_lr()[0]
        entry["seconds"] = round(time.perf_counter() - began, 2)
        history.append(entry)
        _save(out, model, optimizer, schedule, epoch, history, options, config)
        _write_history(out, history)
        log(_describe(entry))
    return history[-1] if history else {}


def _check_resumable(state: dict, options: TrainOptions, out: str) -> None:
    ours = dataclasses.asdict(options)
    theirs = state.get("options", {})
    diff = [k for k in ours if k not in _RESUMABLE and theirs.get(k) != ours[k]]
    if diff:
        lines = ", ".join(f"{k}: {theirs.get(k)!r} there, {ours[k]!r} now" for k in diff)
        raise CheckpointMismatch(
            f"{out} holds a training run with other options ({lines}): use another --out,"
            " the same options to resume, or --restart to train anew"
        )


def _validation_set(plan: Plan, cache: TextCache, options: TrainOptions):
    """The held-out videos, in memory: frames, masks, and every caption of each."""
    if not plan.n_val:
        return None
    frames, masks, texts, text_video = [], [], [], []
    for url in plan.urls:
        name = shard_name(url)
        if name not in plan.val:
            continue
        embeddings_t, offsets = cache.shard(name, options.caption_column)
        for row, _, embeddings, _ in iter_shard(url):
            if row not in plan.val[name] or embeddings is None or not len(embeddings):
                continue
            lo, hi = int(offsets[row]), int(offsets[row + 1])
            if hi == lo:
                continue
            f, m = pad_or_truncate(embeddings, options.max_frames)
            text_video.extend([len(frames)] * (hi - lo))
            texts.append(embeddings_t[lo:hi])
            frames.append(f)
            masks.append(m)
    if len(frames) < 2:
        return None
    return np.stack(frames), np.stack(masks), normalize(np.concatenate(texts)), np.asarray(
        text_video)  # fmt: skip


def _evaluate(model: Contrastive, val, batch: int, device: str) -> dict:
    frames, masks, texts, text_video = val
    model.eval()
    pooled, losses = [], []
    with torch.inference_mode():
        first = np.unique(text_video, return_index=True)[1]  # each video's first caption
        for lo in range(0, len(frames), batch):
            f = torch.from_numpy(frames[lo : lo + batch].astype(np.float32)).to(device)
            m = torch.from_numpy(masks[lo : lo + batch]).to(device)
            pooled.append(model.aggregator(f, m).cpu().numpy())
            t = torch.from_numpy(texts[first[lo : lo + batch]]).to(device)
            if len(f) >= 2:
                losses.append(float(model.loss(f, m, t)) * len(f))
    metrics = retrieval_metrics(texts @ np.concatenate(pooled).T, text_video)
    out = {f"val_{k}": metrics[k] for k in ("t2v_r1", "t2v_r5", "t2v_r10", "v2t_r1", "v2t_r5")}
    out["val_loss"] = sum(losses) / len(frames) if losses else float("nan")
    return out


def _evaluate_mean(val) -> dict:
    """Mean pooling's recall on the same videos: the baseline a learned aggregator must beat."""
    frames, masks, texts, text_video = val
    mean = build(AggregatorConfig("mean", frames.shape[2], frames.shape[1]))
    with torch.inference_mode():
        pooled = mean(torch.from_numpy(frames.astype(np.float32)), torch.from_numpy(masks))
    return retrieval_metrics(texts @ pooled.numpy().T, text_video)


def _save(out, model, optimizer, schedule, epoch, history, options, config) -> None:
    state = {
        "config": dataclasses.asdict(config),  # what load_aggregator needs
        "state_dict": model.aggregator.state_dict(),
        "model": model.state_dict(),
        "optimizer": optimizer.state_dict(),
        "schedule": schedule.state_dict(),
        "epoch": epoch,
        "history": history,
        "options": dataclasses.asdict(options),
    }
    torch.save(state, f"{out}.partial")
    os.replace(f"{out}.partial", out)  # a checkpoint is whole or absent


def _write_history(out: str, history: list[dict]) -> None:
    base = os.path.splitext(out)[0]
    names = list(dict.fromkeys(k for entry in history for k in entry))
    with open(f"{base}.csv", "w", newline="") as f:
        writer = csv.DictWriter(f, names)
        writer.writeheader()
        writer.writerows(history)
    _plot(f"{base}.png", history)


def _plot(path: str, history: list[dict]) -> None:
    try:
        import matplotlib

        matplotlib.use("Agg")
        import matplotlib.pyplot as plt
    except ImportError:
        return  # the csv has the numbers; pip install clip-video-datasets[train] for the plot
    epochs = [e["epoch"] for e in history]
    fig, (left, right) = plt.subplots(1, 2, figsize=(10, 4))
    for name in ("train_loss", "val_loss"):
        if any(name in e for e in history):
            left.plot(epochs, [e.get(name, np.nan) for e in history], marker="o", label=name)
    left.set_xlabel("epoch")
    left.set_ylabel("InfoNCE loss")
    left.legend()
    for name in ("val_t2v_r1", "val_t2v_r5", "val_v2t_r1"):
        if any(name in e for e in history):
            right.plot(epochs, [e.get(name, np.nan) for e in history], marker="o", label=name)
    if any("mean_t2v_r1" in e for e in history):
        right.axhline(history[-1]["mean_t2v_r1"], linestyle="--", color="grey",
                      label="mean pooling t2v R@1")  # fmt: skip
    right.set_xlabel("epoch")
    right.set_ylabel("recall")
    right.legend()
    fig.tight_layout()
    fig.savefig(path, dpi=100)
    plt.close(fig)


def _describe(entry: dict) -> str:
    text = f"epoch {entry['epoch']}: train loss {entry['train_loss']:.4f}"
    if "val_loss" in entry:
        text += (
            f", val loss {entry['val_loss']:.4f}, t2v R@1 {entry['val_t2v_r1']:.3f}"
            f" R@5 {entry['val_t2v_r5']:.3f} (mean pooling {entry['mean_t2v_r1']:.3f})"
        )
    return text
