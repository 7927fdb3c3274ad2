"""Long-video search: rank time windows first, then find the moments inside the best ones.

In a collection of hour-long videos, the best single frames scatter; what a user looks for is
a stretch of video. ``--level clip`` ranks fixed clip windows (4 s by default) by the mean
score of their frames and returns the windows; ``--level segment`` ranks segments (180 s) by
their best clip window and returns the best moment inside each of the top segments (the same
moment rule as the frame level, applied to the segment's own curve).

Windows and segments are cut by ``clip-video-hierarchy``'s rule, the same functions
(:mod:`..hierarchy.windows`): from the start of each row's span (its ``[start, end]`` window,
else the whole video), the last one ending at the span's end, so that a moment found here is
a window of the hierarchy's features. Only windows that hold frames are ranked.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from ..hierarchy.windows import video_span, window_bounds, window_numbers
from .index import SearchIndex
from .moments import Moment, MomentOptions, moments_of


@dataclass(frozen=True)
class Windows:
    """Windows of every video that hold frames, in index order."""

    video: np.ndarray  # the video of each window
    number: np.ndarray  # its number in the video's span
    start: np.ndarray  # seconds
    end: np.ndarray
    first: np.ndarray  # where its frames begin in ``order``
    count: np.ndarray  # frames in it
    order: np.ndarray  # frame rows, grouped by window


def spans(index: SearchIndex) -> tuple[np.ndarray, np.ndarray]:
    """Every video's span (:func:`..hierarchy.windows.video_span`), computed once per index."""
    cached = index.derived.get("spans")
    if cached is None:
        lo, hi = np.zeros(len(index.videos)), np.zeros(len(index.videos))
        for v, meta in enumerate(index.videos):
            times = index.frame_time[index.offsets[v] : index.offsets[v + 1]]
            lo[v], hi[v] = video_span(meta, times) if len(times) else (0.0, 1.0)
        cached = index.derived["spans"] = (lo, hi)
    return cached


def windows_of(index: SearchIndex, seconds: float) -> Windows:
    """The windows of ``seconds`` that hold frames and their frames (the layout, the same for
    every query: computed once per index and length)."""
    key = ("windows", float(seconds))
    cached = index.derived.get(key)
    if cached is not None:
        return cached
    lo, hi = spans(index)
    video = index.frame_video.astype(np.int64)
    number = window_numbers(index.frame_time, lo[video], hi[video], seconds)
    rows = np.flatnonzero(number >= 0)
    order = rows[np.lexsort((number[rows], video[rows]))]
    v, n = video[order], number[order]
    first = np.flatnonzero(np.r_[True, (v[1:] != v[:-1]) | (n[1:] != n[:-1])])
    v, n = v[first], n[first]
    start, end = window_bounds(lo[v], hi[v], seconds, n)
    cached = Windows(v, n, start, end, first, np.diff(np.r_[first, len(order)]), order)
    index.derived[key] = cached
    return cached


def rank_clips(index: SearchIndex, scores: np.ndarray, top: int = 10, seconds: float = 4.0,
               per_video: int = 1) -> list[Moment]:  # fmt: skip
    """The ``top`` clip windows by their mean frame score (``per_video`` at most per video)."""
    w = windows_of(index, seconds)
    if not len(w.first):
        return []
    s = scores[w.order].astype(np.float64)
    mean = np.add.reduceat(s, w.first) / w.count
    found, taken = [], {}
    for i in np.argsort(-mean, kind="stable"):
        v = int(w.video[i])
        if taken.get(v, 0) >= per_video:
            continue
        taken[v] = taken.get(v, 0) + 1
        rows = w.order[w.first[i] : w.first[i] + w.count[i]]
        peak = float(index.frame_time[rows[np.argmax(scores[rows])]])
        meta = index.videos[v]
        found.append(Moment(meta["key"], meta["id"], float(w.start[i]), float(w.end[i]),
                            float(mean[i]), peak, v))  # fmt: skip
        if len(found) == top:
            break
    return found


def rank_segments(index: SearchIndex, scores: np.ndarray, top: int = 10,
                  options: MomentOptions | None = None, segment_seconds: float = 180.0,
                  clip_seconds: float = 4.0) -> list[tuple[Moment, float, float]]:  # fmt: skip
    """The best moment inside each of the ``top`` segments, segments ranked by their best
    clip window (a clip counts in the segment that holds its start); as ``(moment, segment
    start, segment end)``."""
    options = options or MomentOptions()
    clips = windows_of(index, clip_seconds)
    if not len(clips.first):
        return []
    mean = np.add.reduceat(scores[clips.order].astype(np.float64), clips.first) / clips.count
    lo, hi = spans(index)
    segment = window_numbers(clips.start, lo[clips.video], hi[clips.video], segment_seconds)
    key = clips.video * (1 << 32) + segment  # clips are in (video, start) order
    first = np.flatnonzero(np.r_[True, key[1:] != key[:-1]])
    best = np.maximum.reduceat(mean, first)
    out = []
    for i in np.argsort(-best, kind="stable")[:top]:
        v, n = int(clips.video[first[i]]), int(segment[first[i]])
        rows = np.arange(index.offsets[v], index.offsets[v + 1])
        inside = window_numbers(index.frame_time[rows], lo[v], hi[v], segment_seconds) == n
        times, curve = index.frame_time[rows[inside]], scores[rows[inside]]
        start, end, score, peak = moments_of(times, curve, options)[0]
        meta = index.videos[v]
        s_lo, s_hi = window_bounds(lo[v], hi[v], segment_seconds, n)
        moment = Moment(meta["key"], meta["id"], start, end, score, peak, v)
        out.append((moment, float(s_lo), float(s_hi)))
    return out
