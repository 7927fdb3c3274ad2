"""Pooling a video's frame embeddings into time windows: the arithmetic of every level.

The cutting rule, shared with ``clip-video-search --level clip|segment`` so that both find
the same windows: a row's span (:func:`video_span`: its ``[start, end]`` window, else the
whole video) is cut into ``ceil(length / seconds)`` windows from its start, window ``k``
spanning ``[start + k * seconds, start + (k + 1) * seconds)`` and the last one ending at the
span's end (:func:`window_count`, :func:`window_bounds`). A frame belongs to the window whose
``[start, end)`` holds its timestamp; the last window also takes a frame at exactly its end
(:func:`window_of`; :func:`window_numbers` gives the same answer for the frames of many
spans at once, without listing every window).

A window ``[start, end)`` takes the mean of the L2-normalised embeddings of the frames in it.
A window with no frame takes the frame nearest to its centre, and is counted, so that a
reader can tell measured windows from filled ones.
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


def video_span(meta: dict, times: np.ndarray) -> tuple[float, float]:
    """The time the windows cover: the row's window, else the whole video; a window's end
    past the video's end stops there, as the sampler's frames did (``--end 100`` on a 3 s
    video covers 0-3 s, not 97 windows holding no frame)."""
    start = meta.get("start")
    end = meta.get("end")
    duration = meta.get("duration")
    lo = float(start) if start is not None else 0.0
    if end is not None:
        hi = min(float(end), float(duration)) if duration else float(end)
    elif duration:
        hi = float(duration)
    else:
        times = np.asarray(times, np.float64)
        hi = float(times.max()) + (float(np.median(np.diff(times))) if len(times) > 1 else 1.0)
    return lo, max(hi, lo + 1e-6)


def window_count(start, end, seconds: float):
    """How many windows of ``seconds`` cut ``[start, end]`` (at least one; a remainder shorter
    than a nanosecond is no window). Arrays of spans give an array."""
    n = np.maximum(1, np.ceil((np.asarray(end) - np.asarray(start)) / seconds - 1e-9))
    return n.astype(np.int64)


def window_bounds(start, end, seconds: float, number) -> tuple[np.ndarray, np.ndarray]:
    """``(start, end)`` of window ``number`` of each span: ``start + seconds * number``, the
    last window ending at the span's ``end``. Every window's bounds, in search and in the
    hierarchy, come from this one expression, so the same float bits."""
    start, end = np.asarray(start, np.float64), np.asarray(end, np.float64)
    number = np.asarray(number, np.int64)
    last = number >= window_count(start, end, seconds) - 1
    lo = start + seconds * number.astype(np.float64)
    hi = np.where(last, end, start + seconds * (number + 1).astype(np.float64))
    return lo, hi


def window_of(times: np.ndarray, edges: np.ndarray) -> np.ndarray:
    """The window of each frame among those between consecutive ``edges`` (increasing):
    ``edges[k] <= t < edges[k + 1]``, or ``t == edges[-1]`` for the last; -1 outside."""
    times, edges = np.asarray(times, np.float64), np.asarray(edges, np.float64)
    k = np.searchsorted(edges, times, side="right") - 1
    k[times == edges[-1]] = len(edges) - 2
    k[(k < 0) | (k > len(edges) - 2)] = -1
    return k


def window_numbers(times: np.ndarray, start: np.ndarray, end: np.ndarray,
                   seconds: float) -> np.ndarray:  # fmt: skip
    """For frames at ``times`` of spans ``[start, end]`` (one per frame), the number of the
    window holding each frame, -1 outside its span: what :func:`window_of` gives on the
    span's :func:`clip_edges`, in memory proportional to the frames however long a span is.
    A first guess by division is checked against :func:`window_bounds` and moved by one
    where rounding put it on the wrong side of a bound."""
    t = np.asarray(times, np.float64)
    start, end = np.asarray(start, np.float64), np.asarray(end, np.float64)
    last = window_count(start, end, seconds) - 1
    with np.errstate(invalid="ignore"):
        guess = np.floor((t - start) / seconds)
    k = np.clip(np.nan_to_num(guess), 0, last).astype(np.int64)
    for _ in range(2):  # one step each way is all rounding can take
        lo, hi = window_bounds(start, end, seconds, k)
        k = np.clip(k - (t < lo) + ((t >= hi) & (k < last)), 0, last)
    lo, hi = window_bounds(start, end, seconds, k)
    inside = (t >= lo) & ((t < hi) | ((k == last) & (t == end)))
    return np.where(inside, k, -1)


def pool_windows(times: np.ndarray, embeddings: np.ndarray, edges: np.ndarray) -> Windows:
    """Mean of the normalised frames in each window between consecutive ``edges``."""
    times = np.asarray(times, np.float64)
    order = np.argsort(times, kind="stable")
    times, frames = times[order], normalize(embeddings)[order]
    starts, ends = edges[:-1], edges[1:]
    which = window_of(times, edges)  # times are sorted: the frames in windows are one run
    inside = np.flatnonzero(which >= 0)
    first = int(inside[0]) if len(inside) else 0
    numbers = np.arange(len(starts))
    lo = first + np.searchsorted(which[inside], numbers, side="left")
    hi = first + np.searchsorted(which[inside], numbers, side="right")
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
    lo, hi = window_bounds(start, end, seconds, np.arange(window_count(start, end, seconds)))
    return np.append(lo, hi[-1])


def segment_bounds(start: float, end: float, seconds: float) -> list[tuple[float, float]]:
    """Segments of ``seconds`` from ``start``, the remainder last (when it has a length):
    the windows of :func:`clip_edges`, of segment length."""
    edges = clip_edges(start, end, seconds)
    return [(float(lo), float(hi)) for lo, hi in zip(edges[:-1], edges[1:], strict=True)]


def segment_edges(lo: float, hi: float, min_features: int, clip_seconds: float) -> np.ndarray:
    """ReCap's segment features: a step of ``min(duration / min_features, clip_seconds)``, so
    a segment has at least ``min_features`` features and never coarser than a clip."""
    duration = hi - lo
    step = min(duration / min_features, clip_seconds) if duration > 0 else clip_seconds
    n = max(min_features, math.ceil(duration / step - 1e-9)) if duration > 0 else min_features
    edges = lo + step * np.arange(n + 1, dtype=np.float64)
    edges[-1] = max(hi, edges[-2]) if duration > 0 else lo + step * n
    return edges
