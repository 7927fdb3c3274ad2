"""Search inside videos: a text or image query against an embedding dataset gives ranked
moments ``(key, id, start_s, end_s, score)``.

The first query builds a search index next to the dataset (``DATASET/_search/``): every
frame's embedding L2-normalised into one float16 ``.npy`` (streamed shard by shard, never the
whole dataset in memory), a frame table (video, timestamp) and a video table. Queries
memory-map it and score it in slices, so a few million frames search on one machine in
bounded memory. The index is rebuilt when the dataset's committed shards change.

Moments come from each video's own similarity curve (:mod:`.moments`).
"""

from __future__ import annotations

import hashlib
import json
import os
from collections.abc import Iterator

import numpy as np
import pyarrow as pa
import pyarrow.parquet as pq

from video2numpy.npy import NpyWriter

from ..read import dataset_identity, iter_samples
from ..vectors import against_generic
from .moments import Moment, MomentOptions, moments_of, rank_moments

INDEX_DIR = "_search"
DEFAULT_OPTIONS = MomentOptions()


class SearchIndex:
    """The memory-mapped frames of a dataset and their tables."""

    def __init__(self, folder: str) -> None:
        self.folder = folder
        self.embeddings = np.load(os.path.join(folder, "embeddings.npy"), mmap_mode="r")
        frames = pq.read_table(os.path.join(folder, "frames.parquet"))
        self.frame_video = frames.column("video").to_numpy()
        self.frame_time = frames.column("timestamp").to_numpy()
        self.videos = pq.read_table(os.path.join(folder, "videos.parquet")).to_pylist()
        # Frames of a video are contiguous: video v is rows offsets[v]:offsets[v + 1].
        counts = np.bincount(self.frame_video, minlength=len(self.videos))
        self.offsets = np.concatenate([[0], np.cumsum(counts)])
        with open(os.path.join(folder, "index.json")) as f:
            self.info = json.load(f)
        self.resident: np.ndarray | None = None  # float32 frames in memory (keep_in_memory)

    def keep_in_memory(self, budget_bytes: int) -> bool:
        """Hold the frames in memory as float32 when they fit ``budget_bytes``: a long-lived
        process (the search server) then scores a query with one matrix-vector product
        instead of reading and converting the file each time. Returns whether it did."""
        n, dim = self.embeddings.shape
        if n * dim * 4 > budget_bytes:
            return False
        self.resident = np.empty((n, dim), np.float32)
        for lo in range(0, n, 1 << 16):
            self.resident[lo : lo + (1 << 16)] = self.embeddings[lo : lo + (1 << 16)]
        return True

    def __len__(self) -> int:
        return len(self.embeddings)

    def scores(self, query: np.ndarray, slice_rows: int = 1 << 14) -> np.ndarray:
        """Cosine similarity of every frame to ``query`` (float32). The file is read slice by
        slice into one buffer rather than through the memory map, so that scanning millions
        of frames keeps the process's memory at a slice (the OS page cache still helps)."""
        q = np.asarray(query, np.float32).ravel()
        q = q / (np.linalg.norm(q) + 1e-12)
        if self.resident is not None:
            # torch's product: it shares the thread pool of the query's text tower, where
            # numpy's OpenBLAS threads would spin against it (2x the latency, measured).
            import torch

            with torch.inference_mode():
                return torch.mv(torch.from_numpy(self.resident), torch.from_numpy(q)).numpy()
        n, dim = self.embeddings.shape
        out = np.empty(n, np.float32)
        buffer = np.empty((min(slice_rows, n), dim), np.float16)
        with open(os.path.join(self.folder, "embeddings.npy"), "rb") as f:
            f.seek(self.embeddings.offset)
            for lo in range(0, n, slice_rows):
                rows = buffer[: min(slice_rows, n - lo)]
                f.readinto(memoryview(rows).cast("B"))
                out[lo : lo + len(rows)] = rows.astype(np.float32) @ q
        return out

    def curve(self, video: int, scores: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
        lo, hi = self.offsets[video], self.offsets[video + 1]
        return self.frame_time[lo:hi], scores[lo:hi]


def index_folder(dataset: str) -> str:
    """Where a dataset's search index lives: inside a local dataset; for a remote one (an
    fsspec URL) in a local cache folder named after the URL."""
    if "://" not in dataset or dataset.startswith("file://"):
        return os.path.join(dataset.removeprefix("file://"), INDEX_DIR)
    digest = hashlib.sha1(dataset.rstrip("/").encode()).hexdigest()[:16]
    cache = os.environ.get("XDG_CACHE_HOME", os.path.expanduser("~/.cache"))
    return os.path.join(cache, "clip-video-search", digest)


def read_run(dataset: str) -> dict:
    """A dataset's ``run.json`` (local or fsspec URL)."""
    import fsspec

    try:
        with fsspec.open(f"{dataset.rstrip('/')}/run.json", "r") as f:
            return json.load(f)
    except FileNotFoundError as exc:
        message = f"{dataset} has no run.json: not a clip-video-encode dataset"
        raise FileNotFoundError(message) from exc


def build_index(dataset: str, folder: str | None = None) -> str:
    """Write the search index of ``dataset`` (a folder or fsspec URL) unless an up-to-date one
    exists; returns its folder (see :func:`index_folder`)."""
    folder = folder or index_folder(dataset)
    urls, identity = dataset_identity(dataset)
    shards = [u.rstrip("/").rsplit("/", 1)[-1] for u in urls]
    info_path = os.path.join(folder, "index.json")
    if os.path.exists(info_path):
        with open(info_path) as f:
            if json.load(f).get("identity") == identity:
                return folder
    run = read_run(dataset)

    def videos() -> Iterator[tuple[dict, np.ndarray, np.ndarray]]:
        for key, embeddings, meta in iter_samples(dataset):
            if embeddings is None or len(embeddings) == 0:
                continue
            video = {k: meta.get(k) for k in ("location", "caption", "duration", "start", "end")}
            video["key"] = key
            video["id"] = None if meta.get("id") is None else str(meta["id"])
            times = meta.get("timestamps") or np.arange(len(embeddings))
            yield video, embeddings, np.asarray(times, np.float64)

    info = {"shards": shards, "identity": identity, "model": run.get("model"),
            "pretrained": run.get("pretrained")}  # fmt: skip
    try:
        write_index(folder, videos(), info)
    except ValueError as exc:
        raise ValueError(f"{dataset}: {exc}") from exc
    return folder


def write_index(
    folder: str, videos: Iterator[tuple[dict, np.ndarray, np.ndarray]], info: dict
) -> None:
    """Write a search index from ``(video metadata, embeddings, timestamps)`` per video,
    streaming the embeddings (L2-normalised, float16) to disk; ``index.json`` comes last."""
    tmp = os.path.join(folder, "embeddings.npy.partial")
    writer: NpyWriter | None = None
    frame_video: list[np.ndarray] = []
    frame_time: list[np.ndarray] = []
    table: list[dict] = []
    for video, embeddings, times in videos:
        e = np.asarray(embeddings, np.float32)
        e = e / (np.linalg.norm(e, axis=1, keepdims=True) + 1e-12)
        if writer is None:  # the folder only once there is something to index
            os.makedirs(folder, exist_ok=True)
            writer = NpyWriter(tmp, (e.shape[1],), dtype=np.float16)
        writer.append(e.astype(np.float16))
        frame_video.append(np.full(len(e), len(table), np.int32))
        frame_time.append(np.asarray(times, np.float64))
        table.append(video)
    if writer is None:
        raise ValueError("no successfully encoded video to search")
    writer.close()
    os.replace(tmp, os.path.join(folder, "embeddings.npy"))
    pq.write_table(
        pa.table({"video": np.concatenate(frame_video), "timestamp": np.concatenate(frame_time)}),
        os.path.join(folder, "frames.parquet"),
    )
    pq.write_table(pa.Table.from_pylist(table), os.path.join(folder, "videos.parquet"))
    info = {**info, "frames": int(sum(map(len, frame_time))), "videos": len(table)}
    with open(os.path.join(folder, "index.json"), "w") as f:  # last: the index is complete
        json.dump(info, f, indent=1, allow_nan=False)


def search(
    index: SearchIndex,
    query: np.ndarray,
    top: int = 10,
    options: MomentOptions = DEFAULT_OPTIONS,
    contrast: np.ndarray | None = None,
) -> list[Moment]:
    """The ``top`` moments for a query embedding (see :func:`frame_scores`)."""
    return rank_moments(index, frame_scores(index, query, contrast), top, options)


def frame_scores(
    index: SearchIndex, query: np.ndarray, contrast: np.ndarray | None = None
) -> np.ndarray:
    """Every frame's score: cosine similarity to ``query``; with ``contrast`` (a generic
    prompt's embedding) the softmax probability of the query against it at CLIP's usual
    scale of 100, which discounts frames that match anything."""
    scores = index.scores(query)
    if contrast is not None:
        generic = index.scores(contrast)
        scores = against_generic(scores, generic)
    return scores


ANN_FILE = "ann.faiss"


def build_ann(index: SearchIndex, nprobe: int = 16, slice_rows: int = 1 << 16):
    """An approximate index of the frames (faiss IVF with 8-bit scalar quantisation: a byte per
    dimension, inner product), built once and saved next to the search index; rebuilt with it.
    Trained on up to 100k frames, filled slice by slice, so memory stays bounded."""
    try:
        import faiss
    except ImportError as exc:
        raise ImportError("the ANN index needs faiss: pip install faiss-cpu") from exc
    path = os.path.join(index.folder, ANN_FILE)
    if os.path.exists(path) and os.path.getmtime(path) >= os.path.getmtime(
        os.path.join(index.folder, "index.json")
    ):
        ann = faiss.read_index(path)
    else:
        n, dim = index.embeddings.shape
        nlist = int(max(1, min(4 * np.sqrt(n), n // 39)))
        ann = faiss.index_factory(dim, f"IVF{nlist},SQ8", faiss.METRIC_INNER_PRODUCT)
        sample = np.random.default_rng(0).choice(n, size=min(n, 100_000), replace=False)
        ann.train(np.ascontiguousarray(index.embeddings[np.sort(sample)], np.float32))
        for lo in range(0, n, slice_rows):
            ann.add(np.ascontiguousarray(index.embeddings[lo : lo + slice_rows], np.float32))
        faiss.write_index(ann, path + ".partial")
        os.replace(path + ".partial", path)
    ann.nprobe = nprobe
    return ann


def rank_moments_ann(
    index: SearchIndex,
    ann,
    query: np.ndarray,
    top: int = 10,
    options: MomentOptions = DEFAULT_OPTIONS,
    candidates: int = 50,
) -> list[Moment]:
    """Like :func:`rank_moments`, but only the videos of the ANN's best ``top * candidates``
    frames are scored (exactly, frame by frame) instead of every frame."""
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


def iter_top_frames(index: SearchIndex, query: np.ndarray, k: int) -> Iterator[tuple[int, float]]:
    """The ``k`` best frames (row, score), exactly, best first."""
    scores = index.scores(query)
    k = min(k, len(scores))
    top = np.argpartition(-scores, k - 1)[:k]
    for row in top[np.argsort(-scores[top], kind="stable")]:
        yield int(row), float(scores[row])
