"""Scoring summaries against annotations: a method's per-frame scores (and the shots they are
summarised with) against each video's annotators, beside the two baselines every number
needs: ``human`` (each annotator against each other one) and ``random`` (uniform random
frame scores through the same shots and budget, the mean of seeded draws).

The rank correlations (Kendall's tau, Spearman's rho) compare frame scores and need no shots;
the F-score compares summaries, which shots and a budget make. Where a video's shots are not
known (``bounds`` None: TVSum's tsv files alone give neither shots nor a frame rate), its
F-score is None and the means count it out (``f_videos`` says over how many videos F is)."""

from __future__ import annotations

import math
from dataclasses import dataclass

import numpy as np

from .annotations import Annotation
from .knapsack import fill_values, greedy, knapsack
from .metrics import UserRanks, f_against_users, rank_correlations, shot_bounds
from .summary import SummaryOptions, change_points, video_duration

METRICS = ("f_score", "kendall_tau", "spearman_rho")


@dataclass(frozen=True)
class EvalOptions:
    """``f_mode``: ``avg`` over annotators (TVSum's protocol), ``max`` (SumMe's), or ``auto``
    (by the benchmark); ``select``: how the predicted summary is chosen (``knapsack``, the
    protocol, or ``top``)."""

    budget: float = 0.15
    f_mode: str = "auto"
    random_draws: int = 100
    select: str = "knapsack"

    def mode(self, annotation: Annotation) -> str:
        if self.f_mode != "auto":
            return self.f_mode
        return "max" if annotation.benchmark == "summe" else "avg"


def summary_of(
    frame_scores: np.ndarray, bounds: np.ndarray, budget: float, select: str = "knapsack"
) -> np.ndarray:
    """The frames of the shots chosen under ``budget``: shot values are mean frame scores,
    weights shot lengths, capacity ``floor(budget x frames)``."""
    scores = np.asarray(frame_scores, dtype=np.float64)
    n = len(scores)
    starts, ends = bounds[:-1], np.minimum(bounds[1:], n)
    lengths = ends - starts
    values = fill_values(np.add.reduceat(scores, starts) / np.maximum(lengths, 1))
    choose = knapsack if select == "knapsack" else greedy
    chosen = choose(values, lengths, math.floor(budget * n + 1e-9))
    summary = np.zeros(n, dtype=bool)
    for a, b in zip(starts[chosen], ends[chosen], strict=True):
        summary[a:b] = True
    return summary


def bounds_from_times(times: np.ndarray, n_frames: int, fps: float) -> np.ndarray:
    """Shot starts given in seconds as source-frame bounds ``(shots + 1,)``."""
    frames = np.ceil(np.asarray(times, dtype=np.float64) * fps - 1e-6).astype(np.int64)
    inner = np.unique(frames[(frames > 0) & (frames < n_frames)])
    return np.concatenate([[0], inner, [n_frames]])


def annotation_bounds(
    annotation: Annotation,
    shots: str,
    fps: float | None,
    embeddings: np.ndarray | None = None,
    timestamps: np.ndarray | None = None,
    max_shot_seconds: float = 60.0,
) -> np.ndarray:
    """The shots a video is evaluated with: the annotation's own change points when it has
    them (the shared h5 files: every published number uses them), else ``fixed:SECONDS`` or
    KTS on the dataset's embeddings of the video."""
    n = annotation.n_frames
    if annotation.change_points is not None and len(annotation.change_points):
        bounds = shot_bounds(annotation.change_points)
        bounds[-1] = n
        return bounds
    if fps is None:
        raise ValueError(
            f"{annotation.video_id}: its frame rate is unknown (give TVSum's info"
            " file, or a dataset whose records have source_fps)"
        )
    if shots.startswith("fixed:"):
        seconds = float(shots.split(":", 1)[1])
        return bounds_from_times(np.arange(0, n / fps, seconds), n, fps)
    if embeddings is None or timestamps is None:
        raise ValueError(
            f"{annotation.video_id}: --shots kts needs the video's embeddings"
            " (--dataset) or the h5 file's change points (--h5); or give"
            " --shots fixed:SECONDS"
        )
    timestamps = np.asarray(timestamps, dtype=np.float64)
    options = SummaryOptions(shots="kts", max_shot_seconds=max_shot_seconds)
    points = change_points(embeddings, timestamps, video_duration(timestamps, n / fps), options)
    return bounds_from_times(timestamps[points], n, fps)


def source_frame_scores(
    frame_scores: np.ndarray, timestamps: np.ndarray, n_frames: int, fps: float
) -> np.ndarray:
    """Sampled frames' scores spread over the source's frames: each source frame takes the
    score of the last sampled frame at or before its time (the one shown then)."""
    times = np.arange(n_frames) / fps
    index = np.searchsorted(np.asarray(timestamps), times + 1e-6, side="right") - 1
    return np.asarray(frame_scores, dtype=np.float64)[np.clip(index, 0, len(timestamps) - 1)]


def users_of(
    annotation: Annotation, bounds: np.ndarray | None, options: EvalOptions
) -> tuple[np.ndarray | None, np.ndarray]:
    """The annotators' summaries (given, or made from their scores with the same shots and
    budget; None without shots) and their scores (the summaries themselves when only those
    exist)."""
    scores = annotation.user_scores
    summaries = annotation.user_summaries
    if summaries is None and bounds is not None:
        summaries = np.stack([summary_of(u, bounds, options.budget) for u in scores])
    if scores is None:
        scores = summaries.astype(np.float64)
    return summaries, scores


def evaluate_video(
    annotation: Annotation,
    frame_scores: np.ndarray,
    bounds: np.ndarray | None,
    options: EvalOptions,
) -> dict:
    """F-score (None without shots), tau and rho of one method on one video."""
    summaries, scores = users_of(annotation, bounds, options)
    tau, rho = rank_correlations(frame_scores, scores)
    f = None
    if bounds is not None and summaries is not None:
        predicted = summary_of(frame_scores, bounds, options.budget, options.select)
        f = f_against_users(predicted, summaries, options.mode(annotation))
    return {"f_score": f, "kendall_tau": tau, "spearman_rho": rho}


def human_video(
    annotation: Annotation, bounds: np.ndarray | None, options: EvalOptions
) -> dict | None:
    """Leave-one-out: each annotator's summary against the others' (averaged, or the best,
    as the F-score's mode says; None without shots), and each annotator's scores against each
    other one's, over the pairs; None with fewer than two annotators."""
    summaries, scores = users_of(annotation, bounds, options)
    k = len(scores)
    if k < 2:
        return None
    tau, rho = UserRanks(scores).pairwise()
    f = None
    if summaries is not None:
        mode = options.mode(annotation)
        f = float(np.mean([f_against_users(summaries[i], np.delete(summaries, i, axis=0), mode)
                           for i in range(k)]))  # fmt: skip
    return {"f_score": f, "kendall_tau": tau, "spearman_rho": rho}


def random_video(
    annotation: Annotation, bounds: np.ndarray | None, options: EvalOptions, number: int
) -> dict:
    """The mean over ``random_draws`` draws of uniform random frame scores, draw ``d`` of
    video ``number`` seeded with ``(d, number)`` (reproducible run to run); the F-score
    None without shots."""
    summaries, scores = users_of(annotation, bounds, options)
    ranks = UserRanks(scores)
    mode = options.mode(annotation)
    scored = bounds is not None and summaries is not None
    rows = []
    for draw in range(options.random_draws):
        values = np.random.default_rng([draw, number]).random(annotation.n_frames)
        f = np.nan
        if scored:
            predicted = summary_of(values, bounds, options.budget, options.select)
            f = f_against_users(predicted, summaries, mode)
        rows.append((f, *ranks.correlations(values)))
    means = [float(m) for m in np.mean(rows, axis=0)]
    return dict(zip(METRICS, [means[0] if scored else None, *means[1:]], strict=True))


def mean_of(rows: list[dict]) -> dict:
    """Metrics averaged over videos; the F-score over those that have one (``f_videos``)."""
    out = {}
    for m in METRICS:
        values = [r[m] for r in rows if r[m] is not None]
        out[m] = float(np.mean(values)) if values else None
    return {**out, "n_videos": len(rows), "f_videos": sum(r["f_score"] is not None for r in rows)}


def mean_over_splits(per_split: list[dict]) -> dict:
    """The 5-split protocol's number: each split's mean over its test videos, averaged (the
    F-score over the splits that have one)."""
    kept = [s for s in per_split if s["n_videos"]]
    if not kept:
        return {**{m: None for m in METRICS}, "n_videos": 0, "f_videos": 0,
                "splits": len(per_split)}  # fmt: skip
    out = {}
    for m in METRICS:
        values = [s[m] for s in kept if s[m] is not None]
        out[m] = float(np.mean(values)) if values else None
    return {
        **out,
        "n_videos": int(sum(s["n_videos"] for s in kept)),
        "f_videos": int(sum(s["f_videos"] for s in kept)),
        "splits": len(per_split),
        "per_split": per_split,
    }


__all__ = [
    "EvalOptions",
    "annotation_bounds",
    "evaluate_video",
    "human_video",
    "mean_of",
    "mean_over_splits",
    "random_video",
    "source_frame_scores",
    "summary_of",
]
