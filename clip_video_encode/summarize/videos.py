"""Summaries of a dataset's videos: streamed shard by shard, one video's frames in memory at a
time, so a dataset of any size is summarised in flat memory."""

from __future__ import annotations

from collections.abc import Iterable, Iterator

import numpy as np
from tqdm import tqdm

from ..read import iter_samples
from .scores import query_scores, representativeness
from .summary import SummaryOptions, VideoSummary, summarize_video

INFO_FIELDS = ("key", "id", "location", "caption")


def iter_videos(
    dataset: str, wanted: Iterable[str] | None = None, include_failed: bool = False
) -> Iterator[tuple[np.ndarray | None, dict]]:
    """``(frame embeddings, record)`` of the dataset's videos, or of those whose key or id is
    in ``wanted`` (stops reading once all of them were found)."""
    left = None if wanted is None else {str(w) for w in wanted}
    for key, embeddings, meta in iter_samples(dataset, include_failed=include_failed):
        if left is not None:
            names = {key, str(meta.get("id"))}
            if not names & left:
                continue
            left -= names
        yield embeddings, meta
        if left is not None and not left:
            return


def frame_scores_of(
    embeddings: np.ndarray,
    queries: np.ndarray | None,
    combine: str = "max",
    contrast: np.ndarray | None = None,
) -> np.ndarray:
    """Query relevance, or the generic representativeness with no query."""
    if queries is None or not len(queries):
        return representativeness(embeddings)
    return query_scores(embeddings, queries, combine, contrast)


def summarize_record(
    embeddings: np.ndarray,
    meta: dict,
    options: SummaryOptions,
    queries: np.ndarray | None = None,
    combine: str = "max",
    contrast: np.ndarray | None = None,
) -> VideoSummary:
    """One dataset row's summary; ``info`` carries its key, id, location and caption."""
    embeddings = np.asarray(embeddings, dtype=np.float32)
    scores = frame_scores_of(embeddings, queries, combine, contrast)
    summary = summarize_video(
        embeddings,
        np.asarray(meta["timestamps"], dtype=np.float64),
        scores,
        meta.get("duration"),
        meta.get("source_fps"),
        options,
        generic=queries is None or not len(queries),
    )
    summary.info = {f: meta.get(f) for f in INFO_FIELDS}
    return summary


def summarize_dataset(
    dataset: str,
    options: SummaryOptions,
    wanted: Iterable[str] | None = None,
    queries: np.ndarray | None = None,
    combine: str = "max",
    contrast: np.ndarray | None = None,
    progress: bool | None = None,
) -> Iterator[VideoSummary]:
    """Every wanted video's summary, in dataset order."""
    bar = tqdm(unit="video", desc="summarize", disable=None if progress is None else not progress)
    with bar:
        for embeddings, meta in iter_videos(dataset, wanted):
            yield summarize_record(embeddings, meta, options, queries, combine, contrast)
            bar.update()
