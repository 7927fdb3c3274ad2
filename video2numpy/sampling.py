"""Which frames to keep, decided from presentation timestamps alone.

Sampling is a pure function of the sorted frame times of a video, so it is the same for every
decoder backend, exact for variable frame rate and odd time bases, and testable without video.
"""

from __future__ import annotations

import math
from dataclasses import dataclass, replace

import numpy as np

# Two times closer than this are the same instant: absorbs float rounding of rational timestamps.
_EPS = 1e-6


@dataclass(frozen=True)
class Sampling:
    """What to keep from a video.

    At most one of ``every_nth``, ``fps`` and ``num_frames`` is set; none keeps every frame.
    ``start``/``end`` (seconds) restrict any mode to a window, ``max_frames`` caps the result by
    thinning it evenly, so that a capped sample still spans the whole video or window.
    """

    every_nth: int | None = None
    fps: float | None = None
    num_frames: int | None = None
    max_frames: int | None = None
    start: float | None = None
    end: float | None = None

    def __post_init__(self) -> None:
        modes = [m for m in ("every_nth", "fps", "num_frames") if getattr(self, m) is not None]
        if len(modes) > 1:
            raise ValueError(f"choose one sampling mode, not {' and '.join(modes)}")
        for name in ("every_nth", "num_frames", "max_frames"):
            value = getattr(self, name)
            if value is not None and (int(value) != value or value < 1):
                raise ValueError(f"{name} must be a positive integer, got {value!r}")
        if self.fps is not None and not (self.fps > 0 and math.isfinite(self.fps)):
            raise ValueError(f"fps must be positive and finite, got {self.fps!r}")
        # NaN passes every comparison below; no frame is at or after an infinite start. An
        # infinite end is a row's 'to the end' (video2numpy.table.parse_seconds keeps it).
        if self.start is not None and not math.isfinite(self.start):
            raise ValueError(f"start must be a number of seconds, got {self.start!r}")
        if self.end is not None and (math.isnan(self.end) or self.end == -math.inf):
            raise ValueError(f"end must be a number of seconds, got {self.end!r}")
        if self.start is not None and self.start < 0:
            raise ValueError(f"start must be >= 0, got {self.start!r}")
        if self.start is not None and self.end is not None and self.end <= self.start:
            raise ValueError(f"end ({self.end}) must be after start ({self.start})")

    def with_window(self, start: float | None, end: float | None) -> Sampling:
        """The same sampling restricted to a per-video window (e.g. from a table row)."""
        return replace(
            self,
            start=self.start if start is None else start,
            end=self.end if end is None else end,
        )


def frame_interval(times: np.ndarray) -> float:
    """Typical time between frames, used for the display time of the last frame."""
    if len(times) < 2:
        return 0.0
    return float(np.median(np.diff(times)))


def select_frames(
    times: np.ndarray, sampling: Sampling, end_time: float | None = None
) -> np.ndarray:
    """Indices into ``times`` (sorted presentation times, seconds) of the frames to keep.

    ``end_time`` is when the last frame stops being shown (defaults to the last time plus one
    frame interval); ``fps`` sampling uses it so that the last second of a video counts.
    Indices come back in presentation order; ``num_frames`` may repeat a frame when the video
    has fewer frames than asked for, so the result always has exactly that many entries.
    """
    times = np.asarray(times, dtype=np.float64)
    if len(times) == 0:
        return np.zeros(0, dtype=np.int64)
    if end_time is None:
        end_time = float(times[-1]) + frame_interval(times)
    lo = sampling.start if sampling.start is not None else -math.inf
    hi = sampling.end if sampling.end is not None else math.inf
    candidates = np.flatnonzero((times >= lo - _EPS) & (times < hi - _EPS))
    if len(candidates) == 0:
        return candidates.astype(np.int64)

    if sampling.every_nth is not None:
        chosen = candidates[:: sampling.every_nth]
    elif sampling.fps is not None:
        chosen = _nearest_to_grid(times, candidates, sampling.fps, lo, min(hi, end_time))
    elif sampling.num_frames is not None:
        picks = np.linspace(0, len(candidates), sampling.num_frames, endpoint=False)
        chosen = candidates[picks.astype(np.int64)]
    else:
        chosen = candidates

    if sampling.max_frames is not None and len(chosen) > sampling.max_frames:
        picks = np.linspace(0, len(chosen), sampling.max_frames, endpoint=False)
        chosen = chosen[picks.astype(np.int64)]
    return chosen.astype(np.int64)


def _nearest_to_grid(
    times: np.ndarray, candidates: np.ndarray, fps: float, lo: float, hi: float
) -> np.ndarray:
    """For a grid ``t0, t0 + 1/fps, ...`` below ``hi``, the candidate frame nearest each point.

    The grid starts at the window start, or at the first frame when there is no window, so
    29.97 fps sampled at 1 fps gives one frame per true second. A source slower than ``fps``
    would give the same frame twice; it is kept once.
    """
    cand_times = times[candidates]
    t0 = float(cand_times[0]) if lo == -math.inf else lo
    n = max(1, math.ceil((hi - t0) * fps - _EPS))
    grid = t0 + np.arange(n) / fps
    right = np.clip(np.searchsorted(cand_times, grid), 1, len(cand_times) - 1)
    left = right - 1
    if len(cand_times) == 1:
        return candidates[:1]
    nearer_left = (grid - cand_times[left]) <= (cand_times[right] - grid) + _EPS
    nearest = np.where(nearer_left, left, right)
    return candidates[np.unique(nearest)]
