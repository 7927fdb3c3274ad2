"""Long-video search: rank time windows first, then find the moments inside the best ones.

In a collection of hour-long videos, the best single frames scatter; what a user looks for is
a stretch of video. ``--level clip`` ranks fixed clip windows (4 s by default) by the mean
score of their frames and returns the windows; ``--level segment`` ranks segments (180 s) by
their best clip window and returns the best moment inside each of the top segments (the same
moment rule as the frame level, applied to the segment's own curve). Windows are cut from
each video's start by the frames' timestamps, as ``clip-video-hierarchy`` cuts them.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from .index import SearchIndex
from .moments import Moment, MomentOptions, moments_of


@dataclass(frozen=True)
class Windows:
    """Windows of every video that hold frames, in index order."""

    video: np.ndarray  # the video of each window
    number: np.ndarray  # its number in the video (start = number x seconds)
    first: np.ndarray  # the first frame row of each window
    count: np.ndarray  # frames in it
    mean: np.ndarray  # mean frame score
    best: np.ndarray  # best frame score


def windows(index: SearchIndex, scores: np.ndarray, seconds: float) -> Windows:
    """Group each video's frames into ``[k * seconds, (k + 1) * seconds)`` windows."""
    number = np.floor(index.frame_time / seconds + 1e-9).astype(np.int64)
    key = index.frame_video.astype(np.int64) * (1 << 32) + number
    order = np.argsort(key, kind="stable")  # frames of a window together (already, usually)
    key, s = key[order], scores[order].astype(np.float64)
    first = np.flatnonzero(np.r_[True, key[1:] != key[:-1]])
    count = np.diff(np.r_[first, len(key)])
    return Windows(
        video=(key[first] >> 32).astype(np.int64),
        number=(key[first] & ((1 << 32) - 1)).astype(np.int64),
        first=order[first],
        count=count,
        mean=np.add.reduceat(s, first) / count,
        best=np.maximum.reduceat(s, first),
    )


def rank_clips(index: SearchIndex, scores: np.ndarray, top: int = 10, seconds: float = 4.0,
               per_video: int = 1) -> list[Moment]:  # fmt: skip
    """The ``top`` clip windows by their mean frame score (``per_video`` at most per video)."""
    w = windows(index, scores, seconds)
    found, taken = [], {}
    for i in np.argsort(-w.mean, kind="stable"):
        v = int(w.video[i])
        if taken.get(v, 0) >= per_video:
            continue
        taken[v] = taken.get(v, 0) + 1
        lo, hi = index.offsets[v], index.offsets[v + 1]
        times, curve = index.frame_time[lo:hi], scores[lo:hi]
        start = float(w.number[i] * seconds)
        inside = (times >= start - 1e-9) & (times < start + seconds - 1e-9)
        peak = float(times[inside][np.argmax(curve[inside])])
        meta = index.videos[v]
        found.append(Moment(meta["key"], meta["id"], start, start + seconds,
                            float(w.mean[i]), peak, v))  # fmt: skip
        if len(found) == top:
            break
    return found


def rank_segments(index: SearchIndex, scores: np.ndarray, top: int = 10,
                  options: MomentOptions | None = None, segment_seconds: float = 180.0,
                  clip_seconds: float = 4.0) -> list[tuple[Moment, float, float]]:  # fmt: skip
    """The best moment inside each of the ``top`` segments, segments ranked by their best
    clip window; as ``(moment, segment start, segment end)``."""
    options = options or MomentOptions()
    clips = windows(index, scores, clip_seconds)
    segment = np.floor(clips.number * clip_seconds / segment_seconds + 1e-9).astype(np.int64)
    key = clips.video * (1 << 32) + segment
    first = np.flatnonzero(np.r_[True, key[1:] != key[:-1]])
    best = np.maximum.reduceat(clips.mean, first)
    out = []
    for i in np.argsort(-best, kind="stable")[:top]:
        v, n = int(clips.video[first[i]]), int(segment[first[i]])
        lo, hi = index.offsets[v], index.offsets[v + 1]
        times, curve = index.frame_time[lo:hi], scores[lo:hi]
        s_lo, s_hi = n * segment_seconds, (n + 1) * segment_seconds
        inside = (times >= s_lo - 1e-9) & (times < s_hi - 1e-9)
        start, end, score, peak = moments_of(times[inside], curve[inside], options)[0]
        meta = index.videos[v]
        moment = Moment(meta["key"], meta["id"], start, end, score, peak, v)
        duration = meta.get("duration")
        out.append((moment, float(s_lo), float(min(s_hi, duration) if duration else s_hi)))
    return out
