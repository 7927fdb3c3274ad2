"""How much each frame matters: its relevance to the user's text (CLIP-It's language
guidance, with CLIP's own text and image spaces), or, with no text, a generic criterion
computed from the embeddings alone."""

from __future__ import annotations

import numpy as np

from ..vectors import against_generic, normalize


def query_scores(
    embeddings: np.ndarray,
    queries: np.ndarray,
    combine: str = "max",
    contrast: np.ndarray | None = None,
) -> np.ndarray:
    """Each frame's cosine similarity to the queries (rows of ``queries``), combined by
    ``max`` (a frame that matches any of them) or ``mean`` (one that matches all of them).
    With ``contrast`` (a generic prompt's embedding), as in search: the softmax probability
    of each query against it at CLIP's scale of 100, which discounts frames that match
    anything, before combining."""
    frames = normalize(embeddings)
    per_query = frames @ normalize(np.atleast_2d(queries)).T  # (frames, queries)
    if contrast is not None:
        generic = frames @ normalize(contrast)
        per_query = against_generic(per_query, generic[:, None])
    if combine == "max":
        return per_query.max(axis=1)
    if combine == "mean":
        return per_query.mean(axis=1)
    raise ValueError(f"combine must be max or mean, got {combine!r}")


def representativeness(embeddings: np.ndarray) -> np.ndarray:
    """The generic frame score: the cosine of each frame to the video's mean direction (the
    mean of its normalised frames). Frames like most of the video score high; one-off frames
    (black frames, a cut to a title card) low."""
    frames = normalize(embeddings)
    if not len(frames):
        return np.zeros(0, dtype=np.float32)
    return frames @ normalize(frames.mean(axis=0))


def diverse_shot_values(
    embeddings: np.ndarray, shot_starts: np.ndarray, frame_scores: np.ndarray
) -> np.ndarray:
    """The generic shot values, representativeness discounted by redundancy: shots are ranked
    by their mean frame score, and each one's value is that mean times ``1 - c``, where ``c``
    is its highest cosine (of mean directions) to a shot ranked above it (maximal marginal
    relevance, in product form so values stay non-negative). The most representative shot
    keeps its value; a near-repeat of it is worth little, so the budget goes to other
    content."""
    frames = normalize(embeddings)
    bounds = np.append(shot_starts, len(frames))
    means = np.stack(
        [frames[a:b].mean(axis=0) for a, b in zip(bounds[:-1], bounds[1:], strict=True)]
    )
    means = normalize(means)
    base = np.array(
        [frame_scores[a:b].mean() for a, b in zip(bounds[:-1], bounds[1:], strict=True)]
    )
    similar = means @ means.T
    order = np.argsort(-base, kind="stable")
    values = np.zeros(len(base))
    for rank, k in enumerate(order):
        redundancy = float(similar[k, order[:rank]].max()) if rank else 0.0
        values[k] = max(base[k], 0.0) * (1.0 - max(redundancy, 0.0))
    return values
