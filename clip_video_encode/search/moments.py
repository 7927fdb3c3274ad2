"""Moments from similarity curves, and the ranking of moments over a whole index.

A video's moments come from its own curve: frames scoring above a threshold set between the
curve's median and its maximum are kept, and kept frames closer than a gap merge into one
moment (an optional moving average smooths the curve first). A moment's score is its best
(smoothed) frame's, so a video's best moment scores exactly its smoothed curve's maximum:
ranking picks the videos to look at by that maximum, the very number it ranks by, and so
returns what scoring every video would.
"""

from __future__ import annotations

from dataclasses import asdict, dataclass

import numpy as np


@dataclass(frozen=True)
class Moment:
    key: str
    id: str | None
    start_s: float
    end_s: float
    score: float
    peak_s: float  # timestamp of the best frame
    video: int  # row of the video table

    def as_dict(self) -> dict:
        return asdict(self)


@dataclass(frozen=True)
class MomentOptions:
    threshold: float = 0.5  # 0: the curve's median, 1: its maximum
    min_gap: float = 2.0  # seconds: kept frames closer than this join one moment
    smooth: int = 1  # frames in the moving average (1: none)
    per_video: int = 1  # moments kept per video


DEFAULT_OPTIONS = MomentOptions()
_FIXED = 2.0**32  # fixed-point scale of the moving average's sums
_CHUNK = 1 << 16  # frames smoothed at a time (memory: a few arrays of this many)


def smooth_curves(scores: np.ndarray, offsets: np.ndarray, width: int) -> np.ndarray:
    """Each video's moving average of ``width`` frames (``min(width, frames)`` for a shorter
    video), its ends padded with its first and last value; video ``v`` is rows
    ``offsets[v]:offsets[v + 1]``. float64; ``width <= 1`` returns the scores as they are.

    The sums are taken in fixed point (2^-32 steps, integer arithmetic, exact and so
    independent of order): a video's result is bit for bit the same whether it is smoothed
    alone (:func:`moments_of`) or with every other video of an index (:func:`rank_moments`),
    and equal frames give equal averages, so plateaus keep exact ties."""
    x = np.asarray(scores, np.float64)
    if width <= 1 or len(x) == 0:
        return x
    offsets = np.asarray(offsets, np.int64)
    amax = float(np.abs(x).max()) if len(x) else 0.0
    scale = _FIXED
    if amax * width * scale >= 2.0**61:  # scores far outside a cosine's range: coarser steps
        scale = 2.0 ** np.floor(np.log2(2.0**61 / (amax * width)))
    out = np.empty_like(x)
    v = 0
    while v < len(offsets) - 1:  # chunks of whole videos
        w = int(np.searchsorted(offsets, offsets[v] + _CHUNK, side="right")) - 1
        w = min(max(w, v + 1), len(offsets) - 1)
        _smooth_chunk(x, out, offsets[v : w + 1], width, scale)
        v = w
    return out


def _smooth_chunk(x, out, offsets, width, scale) -> None:
    base, stop = int(offsets[0]), int(offsets[-1])
    if stop == base:
        return
    counts = np.diff(offsets)
    video = np.repeat(np.arange(len(counts)), counts)
    lo = (offsets[:-1] - base)[video]
    hi = (offsets[1:] - base - 1)[video]
    k = np.minimum(width, counts)[video]
    i = np.arange(stop - base)
    a = i - k // 2
    b = a + k - 1
    q = np.rint(x[base:stop] * scale).astype(np.int64)
    c = np.concatenate([[0], np.cumsum(q)])  # may wrap: differences of it stay exact
    a_in, b_in = np.maximum(a, lo), np.minimum(b, hi)
    total = c[b_in + 1] - c[a_in] + (a_in - a) * q[lo] + (b - b_in) * q[hi]
    out[base:stop] = total / (k * scale)


def curve_moments(
    times: np.ndarray, curve: np.ndarray, options: MomentOptions
) -> list[tuple[float, float, float, float]]:
    """The moments of a curve already smoothed (``options.smooth`` is not applied here)."""
    times = np.asarray(times, np.float64)
    scores = np.asarray(curve, np.float64)
    if len(scores) == 0:
        return []
    low, high = np.median(scores), scores.max()
    threshold = low + options.threshold * (high - low)
    keep = np.flatnonzero(scores >= threshold - 1e-12)
    step = float(np.median(np.diff(times))) if len(times) > 1 else 1.0
    groups: list[list[int]] = []
    for i in keep:
        if groups and times[i] - times[groups[-1][-1]] <= options.min_gap + 1e-9:
            groups[-1].append(i)
        else:
            groups.append([i])
    out = []
    for group in groups:
        best = max(group, key=lambda i: scores[i])
        out.append((float(times[group[0]]), float(times[group[-1]] + step),
                    float(scores[best]), float(times[best])))  # fmt: skip
    return sorted(out, key=lambda m: -m[2])


def moments_of(
    times: np.ndarray, scores: np.ndarray, options: MomentOptions = DEFAULT_OPTIONS
) -> list[tuple[float, float, float, float]]:
    """``(start_s, end_s, score, peak_s)`` of the moments in one video's similarity curve,
    best first. A moment spans its kept frames; its end is the last kept frame's time plus
    the curve's typical frame spacing (so a one-frame moment has a length)."""
    scores = np.asarray(scores, np.float64)
    curve = smooth_curves(scores, np.array([0, len(scores)]), options.smooth)
    return curve_moments(times, curve, options)


def rank_moments(index, scores: np.ndarray, top: int = 10,
                 options: MomentOptions = DEFAULT_OPTIONS) -> list[Moment]:  # fmt: skip
    """The ``top`` moments of a :class:`~.index.SearchIndex` given every frame's score, as
    scoring every video would give them (ties by key, then start).

    Only the videos that can hold one of them are scored frame by frame: a video's best
    moment scores its smoothed curve's maximum and its other moments less, so the videos
    whose maximum is below the ``top``-th largest cannot, and of those tied at it only the
    ``top`` smallest keys can."""
    n_videos = len(index.videos)
    if top <= 0 or n_videos == 0:
        return []
    offsets = index.offsets
    curves = smooth_curves(scores, offsets, options.smooth)
    counts = np.diff(offsets)
    best = np.full(n_videos, -np.inf)
    held = np.flatnonzero(counts > 0)
    if len(held):
        best[held] = np.maximum.reduceat(curves, offsets[:-1][held])
    k = min(top, n_videos)
    cut = np.partition(best, n_videos - k)[n_videos - k]
    above = np.flatnonzero(best > cut)
    tied = sorted(np.flatnonzero(best == cut).tolist(), key=lambda v: index.videos[v]["key"])
    found: list[Moment] = []
    for video in [*above.tolist(), *tied[:k]]:
        lo, hi = offsets[video], offsets[video + 1]
        meta = index.videos[video]
        for start, end, score, peak in curve_moments(index.frame_time[lo:hi], curves[lo:hi],
                                                     options)[: options.per_video]:  # fmt: skip
            found.append(Moment(meta["key"], meta["id"], start, end, score, peak, video))
    found.sort(key=lambda m: (-m.score, m.key, m.start_s))
    return found[:top]
