"""Small vector helpers shared by the tools built on a dataset (search, hierarchy, video
models, summaries)."""

from __future__ import annotations

import numpy as np

CLIP_SCALE = 100.0  # CLIP's logit scale, at which a query is contrasted with a generic prompt


def normalize(x: np.ndarray, axis: int = -1) -> np.ndarray:
    """Rows (or ``axis``) scaled to unit length, as float32; zero rows stay zero."""
    x = np.asarray(x, np.float32)
    return x / np.maximum(np.linalg.norm(x, axis=axis, keepdims=True), 1e-12)


def against_generic(scores: np.ndarray, generic: np.ndarray) -> np.ndarray:
    """The softmax probability of a query against a generic prompt (e.g. "a video frame"),
    from the two cosine similarities of each frame, at CLIP's scale: it discounts frames that
    match anything."""
    return 1.0 / (1.0 + np.exp(-CLIP_SCALE * (scores - generic)))
