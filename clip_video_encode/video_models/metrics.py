"""Metrics as the literature computes them, on plain arrays (no model, no dataset).

Ranks are 1-based and optimistic on ties: a query's rank is one plus the number of candidates
scored strictly higher than its best true match (as CLIP4Clip's ``compute_metrics`` finds the
first position of the true score in the sorted row). With several captions per video
(MSR-VTT's 20, VATEX's 10): text-to-video ranks every caption as a query of its own;
video-to-text ranks each video by its best-placed caption.
"""

from __future__ import annotations

from collections import Counter

import numpy as np


def softmax(x: np.ndarray, axis: int = -1) -> np.ndarray:
    x = x - x.max(axis=axis, keepdims=True)
    e = np.exp(x)
    return e / e.sum(axis=axis, keepdims=True)


def frame_softmax_scores(frames: np.ndarray, mask: np.ndarray, classes: np.ndarray,
                         scale: float = 100.0) -> np.ndarray:  # fmt: skip
    """LAION's zero-shot score: per frame, a softmax of ``scale`` x cosine over the classes;
    averaged over the real frames. ``frames`` (n, T, D), ``mask`` (n, T), ``classes`` (K, D)
    normalised. Returns (n, K)."""
    f = frames.astype(np.float32)
    f /= np.maximum(np.linalg.norm(f, axis=-1, keepdims=True), 1e-12)
    probs = softmax(scale * (f @ classes.T), axis=-1)  # (n, T, K)
    weights = mask.astype(np.float32)[..., None]
    return (probs * weights).sum(1) / np.maximum(weights.sum(1), 1.0)


def topk_accuracy(scores: np.ndarray, labels: np.ndarray, k: int) -> float:
    """Share of rows whose label is among the ``k`` best-scored classes (ties: the label
    counts as placed before classes of equal score, as in the ranks)."""
    if len(labels) == 0:
        return float("nan")
    true = scores[np.arange(len(labels)), labels]
    rank = (scores > true[:, None]).sum(1)  # classes strictly better than the label
    return float((rank < k).mean())


def mean_class_accuracy(predictions: np.ndarray, labels: np.ndarray, n_classes: int) -> float:
    """Top-1 accuracy of each class that has examples, averaged over those classes."""
    per_class = [float((predictions[labels == c] == c).mean()) for c in range(n_classes)
                 if (labels == c).any()]  # fmt: skip
    return float(np.mean(per_class)) if per_class else float("nan")


def confused_pairs(predictions: np.ndarray, labels: np.ndarray, names: list[str],
                   top: int = 5) -> list[dict]:  # fmt: skip
    """The most frequent (true class, predicted class) mistakes."""
    counts = Counter((int(t), int(p)) for t, p in zip(labels, predictions, strict=True) if t != p)
    return [{"true": names[t], "predicted": names[p], "count": n}
            for (t, p), n in counts.most_common(top)]  # fmt: skip


def ranks_of(similarity: np.ndarray, best: np.ndarray, chunk: int = 4096) -> np.ndarray:
    """1 + the number of candidates scored strictly above ``best``, row by row."""
    out = np.empty(len(similarity), np.int64)
    for lo in range(0, len(similarity), chunk):
        part = similarity[lo : lo + chunk]
        out[lo : lo + chunk] = 1 + (part > best[lo : lo + chunk, None]).sum(1)
    return out


def retrieval_metrics(similarity: np.ndarray, text_video: np.ndarray) -> dict:
    """Text-to-video and video-to-text recall@1/5/10, median and mean rank. ``similarity``:
    (texts, videos); ``text_video``: the video of each text. Videos without a caption take
    no part in video-to-text."""
    similarity = np.asarray(similarity, np.float32)
    text_video = np.asarray(text_video, np.int64)
    n_texts, n_videos = similarity.shape
    true = similarity[np.arange(n_texts), text_video]
    t2v = ranks_of(similarity, true)
    best = np.full(n_videos, -np.inf, np.float32)
    np.maximum.at(best, text_video, true)  # each video's best-placed caption
    per_video = np.bincount(text_video, minlength=n_videos)
    captioned = per_video > 0
    v2t = ranks_of(similarity.T[captioned], best[captioned])
    out = {"n_videos": n_videos, "n_texts": n_texts}
    for name, r in (("t2v", t2v), ("v2t", v2t)):
        for k in (1, 5, 10):
            out[f"{name}_r{k}"] = float((r <= k).mean())
        out[f"{name}_median_rank"] = float(np.median(r))
        out[f"{name}_mean_rank"] = float(r.mean())
    out["chance"] = retrieval_chance(n_videos, per_video[captioned].tolist())
    return out


def retrieval_chance(n_videos: int, per_video: list[int]) -> dict:
    """What random scores give: R@k and the expected median rank, both directions."""
    n_texts = sum(per_video)
    chance = {}
    for k in (1, 5, 10):
        chance[f"t2v_r{k}"] = min(1.0, k / n_videos)
        # P(at least one of a video's m captions in the top k of n_texts), averaged.
        chance[f"v2t_r{k}"] = float(np.mean([_hit_chance(n_texts, m, k) for m in per_video]))
    chance["t2v_median_rank"] = chance["t2v_mean_rank"] = (n_videos + 1) / 2
    # The best of m captions placed at random among n_texts: expected rank (n + 1) / (m + 1).
    chance["v2t_median_rank"] = chance["v2t_mean_rank"] = float(
        np.mean([(n_texts + 1) / (m + 1) for m in per_video]))  # fmt: skip
    return chance


def _hit_chance(n: int, m: int, k: int) -> float:
    if m == 0:
        return 0.0
    miss = 1.0
    for i in range(min(k, n)):
        miss *= max(n - m - i, 0) / (n - i)
    return 1.0 - miss
