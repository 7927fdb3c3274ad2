"""One video's summary from its frame embeddings: shots, shot values, and the shots chosen
under the length budget (CLIP-It's recipe on a dataset that already holds every frame's
CLIP embedding and time)."""

from __future__ import annotations

import math
from dataclasses import dataclass, field

import numpy as np

from .knapsack import fill_values, greedy, knapsack
from .scores import diverse_shot_values
from .shots import fixed_shots, kts

DEFAULT_FPS = 25.0  # the frame grid of a video whose record has no source_fps


@dataclass(frozen=True)
class SummaryOptions:
    """``budget``: the summary's share of the video's length; ``shots``: ``kts`` or
    ``fixed:SECONDS``; ``select``: ``knapsack`` (exact) or ``top`` (greedy);
    ``max_shot_seconds``: KTS's bound on a shot's length (keeps it linear in the video's
    length; a shot longer than the budget could never be chosen anyway)."""

    budget: float = 0.15
    shots: str = "kts"
    select: str = "knapsack"
    max_shot_seconds: float = 60.0

    def __post_init__(self) -> None:
        if not 0 < self.budget <= 1:
            raise ValueError(
                f"budget is a share of the video's length in (0, 1], got {self.budget}"
            )
        if self.select not in ("knapsack", "top"):
            raise ValueError(f"select must be knapsack or top, got {self.select!r}")
        fixed_seconds(self.shots)  # refuses a malformed --shots early
        if self.max_shot_seconds <= 0:
            raise ValueError("max_shot_seconds must be positive")


def fixed_seconds(shots: str) -> float | None:
    """The shot length of ``fixed:SECONDS``, None for ``kts``."""
    if shots == "kts":
        return None
    kind, _, seconds = shots.partition(":")
    try:
        value = float(seconds)
    except ValueError:
        value = -1.0
    if kind != "fixed" or value <= 0:
        raise ValueError(f"shots must be kts or fixed:SECONDS (e.g. fixed:2), got {shots!r}")
    return value


@dataclass
class Shot:
    start_s: float
    end_s: float
    first_frame: int  # index of the shot's first sampled frame
    n_frames: int  # sampled frames in it
    weight: int  # source frames in it (the knapsack's unit)
    score: float  # its value: mean frame score (or the generic criterion)
    selected: bool = False

    def as_dict(self) -> dict:
        return {
            "start": round(self.start_s, 6),
            "end": round(self.end_s, 6),
            "first_frame": self.first_frame,
            "n_frames": self.n_frames,
            "source_frames": self.weight,
            "score": round(float(self.score), 6),
            "selected": self.selected,
        }


@dataclass
class VideoSummary:
    shots: list[Shot]
    timestamps: np.ndarray
    frame_scores: np.ndarray
    duration: float
    fps: float
    capacity: int  # source frames the summary may hold
    info: dict = field(default_factory=dict)  # key, id, location, caption, ...

    @property
    def selected_ranges(self) -> list[tuple[float, float]]:
        return [(s.start_s, s.end_s) for s in self.shots if s.selected]

    @property
    def summary_seconds(self) -> float:
        return sum(s.weight for s in self.shots if s.selected) / self.fps

    def as_dict(self) -> dict:
        return {
            **self.info,
            "duration": round(self.duration, 6),
            "fps": round(self.fps, 6),
            "budget_seconds": round(self.capacity / self.fps, 6),
            "summary_seconds": round(self.summary_seconds, 6),
            "shots": [s.as_dict() for s in self.shots],
            "timestamps": [round(float(t), 6) for t in self.timestamps],
            "frame_scores": [round(float(s), 6) for s in self.frame_scores],
        }


def change_points(
    embeddings: np.ndarray, timestamps: np.ndarray, duration: float, options: SummaryOptions
) -> np.ndarray:
    """Where shots start (sampled-frame indices, the first shot's 0 not listed)."""
    seconds = fixed_seconds(options.shots)
    if seconds is not None:
        return fixed_shots(timestamps, seconds)
    rate = len(timestamps) / duration if duration > 0 else 1.0
    return kts(embeddings, max_shot=max(1, round(options.max_shot_seconds * rate)))


def video_duration(timestamps: np.ndarray, duration: float | None) -> float:
    """The record's duration, or (when it has none) the last frame's time plus one interval."""
    if duration and duration > 0:
        return float(max(duration, timestamps[-1] if len(timestamps) else 0.0))
    if len(timestamps) >= 2:
        return float(timestamps[-1] + np.median(np.diff(timestamps)))
    return float(timestamps[-1]) + 1.0 if len(timestamps) else 0.0


def summarize_video(
    embeddings: np.ndarray,
    timestamps: np.ndarray,
    frame_scores: np.ndarray,
    duration: float | None = None,
    fps: float | None = None,
    options: SummaryOptions = SummaryOptions(),
    generic: bool = False,
    points: np.ndarray | None = None,
) -> VideoSummary:
    """Shots (KTS or fixed, or ``points`` given), their values (mean frame score; with
    ``generic``, discounted by redundancy), and the selection under ``budget``.

    Shot ``k`` covers ``[start, end)`` seconds from its first frame's time to the next
    shot's (the first from 0, the last to the video's end), so the shots tile the video; its
    weight is the number of source frames (at ``fps``, else 25) in that range, and the
    capacity is ``floor(budget x`` all of them ``)``, as in the literature's evaluations.
    """
    timestamps = np.asarray(timestamps, dtype=np.float64)
    frame_scores = np.asarray(frame_scores, dtype=np.float64)
    n = len(timestamps)
    duration = video_duration(timestamps, duration)
    fps = float(fps) if fps and fps > 0 else DEFAULT_FPS
    if n == 0:
        return VideoSummary([], timestamps, frame_scores, duration, fps, 0)
    if points is None:
        points = change_points(embeddings, timestamps, duration, options)
    starts = np.concatenate([[0], np.asarray(points, dtype=np.int64)])
    ends = np.append(starts[1:], n)
    edges = np.append(np.concatenate([[0.0], timestamps[starts[1:]]]), duration)
    frames_at = np.ceil(edges * fps - 1e-6).astype(np.int64)
    weights = np.diff(frames_at)
    if generic:
        values = diverse_shot_values(embeddings, starts, frame_scores)
    else:
        values = np.array([frame_scores[a:b].mean() for a, b in zip(starts, ends, strict=True)])
    capacity = math.floor(options.budget * int(frames_at[-1]) + 1e-9)
    choose = knapsack if options.select == "knapsack" else greedy
    # Query scores fill the budget whatever their sign; generic repeats stay worth 0.
    selected = choose(values if generic else fill_values(values), weights, capacity)
    shots = [
        Shot(
            float(edges[k]),
            float(edges[k + 1]),
            int(starts[k]),
            int(ends[k] - starts[k]),
            int(weights[k]),
            float(values[k]),
            bool(selected[k]),
        )
        for k in range(len(starts))
    ]
    return VideoSummary(shots, timestamps, frame_scores, duration, fps, capacity)
