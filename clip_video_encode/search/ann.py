"""The approximate (ANN) index of a search index's frames: faiss IVF with 8-bit scalar
quantisation, built once per generation of the search index and saved in that generation's
folder with a stamp (``ann.json``: the generation it was built from and a digest of the saved
file), checked on every load. An ANN index is so only ever used with the frames it was built
from: neither a file left by an older index, nor one saved by a long-lived reader of a
replaced generation, nor one copied from elsewhere."""

from __future__ import annotations

import contextlib
import hashlib
import json
import os

import numpy as np

from .moments import DEFAULT_OPTIONS, Moment, MomentOptions, moments_of

ANN_FILE = "ann.faiss"
ANN_STAMP = "ann.json"


def _digest(path: str) -> str:
    h = hashlib.sha256()
    with open(path, "rb") as f:
        while chunk := f.read(1 << 20):
            h.update(chunk)
    return h.hexdigest()


def _load(index, faiss):
    """The saved ANN index of ``index``'s generation, or None when there is none that its
    stamp ties to this generation and to the file's content."""
    try:
        with open(index.path(ANN_STAMP)) as f:
            stamp = json.load(f)
        n, dim = index.embeddings.shape
        if stamp.get("index") != index.generation or stamp.get("frames") != n:
            return None
        path = index.path(ANN_FILE)
        if _digest(path) != stamp.get("sha256"):
            return None
        ann = faiss.read_index(path)
    except (OSError, ValueError, RuntimeError):  # absent, unreadable, not faiss
        return None
    return ann if ann.ntotal == n and ann.d == dim else None


def _save(index, ann, faiss) -> None:
    """Saved beside the generation's frames; a generation replaced (and removed) meanwhile
    keeps its ANN index in memory only."""
    path, stamp = index.path(ANN_FILE), index.path(ANN_STAMP)
    tmp = f"{path}.{os.getpid()}.partial"
    try:
        faiss.write_index(ann, tmp)
        digest = _digest(tmp)
        os.replace(tmp, path)
        with open(f"{stamp}.{os.getpid()}.partial", "w") as f:
            json.dump({"index": index.generation, "frames": int(ann.ntotal), "sha256": digest}, f)
        os.replace(f"{stamp}.{os.getpid()}.partial", stamp)
    except (OSError, RuntimeError):
        for name in (tmp, f"{stamp}.{os.getpid()}.partial"):
            with contextlib.suppress(OSError):
                os.remove(name)


def build_ann(index, nprobe: int = 16, slice_rows: int = 1 << 16):
    """An approximate index of the frames (faiss IVF with 8-bit scalar quantisation: a byte per
    dimension, inner product), built once per search index generation and saved with it.
    Trained on up to 100k frames, filled slice by slice, so memory stays bounded."""
    try:
        import faiss
    except ImportError as exc:
        raise ImportError("the ANN index needs faiss: pip install faiss-cpu") from exc
    ann = _load(index, faiss)
    if ann is None:
        n, dim = index.embeddings.shape
        nlist = int(max(1, min(4 * np.sqrt(n), n // 39)))
        ann = faiss.index_factory(dim, f"IVF{nlist},SQ8", faiss.METRIC_INNER_PRODUCT)
        sample = np.random.default_rng(0).choice(n, size=min(n, 100_000), replace=False)
        ann.train(np.ascontiguousarray(index.embeddings[np.sort(sample)], np.float32))
        for lo in range(0, n, slice_rows):
            ann.add(np.ascontiguousarray(index.embeddings[lo : lo + slice_rows], np.float32))
        _save(index, ann, faiss)
    ann.nprobe = nprobe
    return ann


def rank_moments_ann(
    index,
    ann,
    query: np.ndarray,
    top: int = 10,
    options: MomentOptions = DEFAULT_OPTIONS,
    candidates: int = 50,
) -> list[Moment]:
    """Like :func:`~.moments.rank_moments`, but only the videos of the ANN's best
    ``top * candidates`` frames are scored (exactly, frame by frame) instead of every frame."""
    q = np.asarray(query, np.float32).ravel()
    q = q / (np.linalg.norm(q) + 1e-12)
    _, rows = ann.search(q[None], min(len(index), top * candidates))
    videos = list(dict.fromkeys(int(index.frame_video[r]) for r in rows[0] if r >= 0))
    found: list[Moment] = []
    for video in videos:
        lo, hi = index.offsets[video], index.offsets[video + 1]
        curve = index.embeddings[lo:hi].astype(np.float32) @ q
        for start, end, score, peak in moments_of(index.frame_time[lo:hi], curve, options)[
            : options.per_video
        ]:
            meta = index.videos[video]
            found.append(Moment(meta["key"], meta["id"], start, end, score, peak, video))
    found.sort(key=lambda m: (-m.score, m.key, m.start_s))
    return found[:top]
