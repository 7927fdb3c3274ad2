"""Pooling a video's frame embeddings into time windows: the arithmetic of every level.

A window ``[start, end)`` takes the mean of the L2-normalised embeddings of the frames whose
timestamps fall in it (the last window also takes a frame at exactly its end). A window with
no frame takes the frame nearest to its centre, and is counted, so that a reader can tell
measured windows from filled ones.
"""

from __future__ import annotations

import math
from dataclasses import dataclass

import numpy as np

from ..vectors import normalize


@dataclass(frozen=True)
class Windows:
    features: np.ndarray  # (n, dim) float32
    starts: np.ndarray  # (n,) seconds
    ends: np.ndarray  # (n,) seconds
    filled: int  # windows that held no frame and took their nearest


def pool_windows(times: np.ndarray, embeddings: np.ndarray, edges: np.ndarray) -> Windows:
    """Mean of the normalised frames in each window between consecutive ``edges``."""
    times = np.asarray(times, np.float64)
    order = np.argsort(times, kind="stable")
    times, frames = times[order], normalize(embeddings)[order]
    starts, ends = edges[:-1], edges[1:]
    lo = np.searchsorted(times, starts, side="left")
    hi = np.searchsorted(times, ends, side="left")
    hi[-1] = np.searchsorted(times, ends[-1], side="right")  # the last window is closed
    sums = np.vstack([np.zeros((1, frames.shape[1]), np.float32), np.cumsum(frames, 0)])
    counts = (hi - lo).astype(np.float32)
    features = (sums[hi] - sums[lo]) / np.maximum(counts, 1.0)[:, None]
    empty = np.flatnonzero(counts == 0)
    if len(empty):
        centres = (starts[empty] + ends[empty]) / 2
        nearest = np.abs(times[None, :] - centres[:, None]).argmin(1)
        features[empty] = frames[nearest]
    return Windows(features.astype(np.float32), starts, ends, int(len(empty)))


def clip_edges(start: float, end: float, seconds: float) -> np.ndarray:
    """``ceil(duration / seconds)`` windows from ``start``; the last ends at ``end``."""
    n = max(1, math.ceil((end - start) / seconds - 1e-9))
    edges = start + seconds * np.arange(n + 1, dtype=np.float64)
    edges[-1] = end
    return edges


def segment_bounds(start: float, end: float, seconds: float) -> list[tuple[float, float]]:
    """Segments of ``seconds`` from ``start``, the remainder last (when it has a length)."""
    bounds, lo = [], start
    while lo < end - 1e-9:
        hi = min(lo + seconds, end)
        bounds.append((lo, hi))
        lo = hi
    return bounds or [(start, end)]


def segment_edges(lo: float, hi: float, min_features: int, clip_seconds: float) -> np.ndarray:
    """ReCap's segment features: a step of ``min(duration / min_features, clip_seconds)``, so
    a segment has at least ``min_features`` features and never coarser than a clip."""
    duration = hi - lo
    step = min(duration / min_features, clip_seconds) if duration > 0 else clip_seconds
    n = max(min_features, math.ceil(duration / step - 1e-9)) if duration > 0 else min_features
    edges = lo + step * np.arange(n + 1, dtype=np.float64)
    edges[-1] = max(hi, edges[-2]) if duration > 0 else lo + step * n
    return edges
