"""Search inside videos: a text or image query against an embedding dataset gives ranked
moments ``(key, id, start_s, end_s, score)``.

The first query builds a search index next to the dataset (``DATASET/_search/``): every
frame's embedding L2-normalised into one float16 ``.npy`` (streamed shard by shard, never the
whole dataset in memory), a frame table (video, timestamp) and a video table. Queries
memory-map it and score it in slices, so a few million frames search on one machine in
bounded memory. The index is rebuilt when the dataset's committed shards change, as a new
generation beside the one open readers use (:mod:`.store`).

Moments come from each video's own similarity curve (:mod:`.moments`).
"""

from __future__ import annotations

import contextlib
import hashlib
import os
import shutil
import time
from collections.abc import Iterator

import numpy as np
import pyarrow as pa
import pyarrow.parquet as pq

from video2numpy.npy import NpyWriter

from ..read import dataset_identity, in_run_window, iter_samples, read_run, run_window
from ..vectors import against_generic
from .moments import DEFAULT_OPTIONS, Moment, MomentOptions, rank_moments
from .store import (
    POINTER,
    commit,
    generation_of,
    new_generation,
    open_npy,
    partial_folder,
    read_pointer,
    read_rows,
)

INDEX_DIR = "_search"


class SearchIndex:
    """The memory-mapped frames of a dataset and their tables: one generation of the index
    (:mod:`.store`), whose files stay open for the life of this object, so that every query
    reads the frames, tables and ANN index of that one generation even after a newer one
    has replaced it on disk."""

    def __init__(self, folder: str) -> None:
        self.folder = folder
        for attempt in range(20):
            info = read_pointer(folder)
            if info is None:
                raise FileNotFoundError(f"{folder}: no search index ({POINTER}); build_index"
                                        " writes one")  # fmt: skip
            generation = generation_of(info)
            if generation is None and "generation" in info:
                raise ValueError(f"{folder}/{POINTER} names {info['generation']!r}, not a"
                                 " generation of a search index; build_index (and any"
                                 " clip-video-search query) writes it again")  # fmt: skip
            if generation is None:
                raise ValueError(f"{folder}: a search index of an older layout; build_index"
                                 " (and any clip-video-search query) writes it again")  # fmt: skip
            try:
                self._open(os.path.join(folder, generation))
                break
            except FileNotFoundError:  # replaced (and removed) meanwhile: read the pointer again
                if attempt == 19:
                    raise
                time.sleep(0.05)
        self.info = info
        self.generation = generation
        self.resident: np.ndarray | None = None  # float32 frames in memory (keep_in_memory)
        self.derived: dict = {}  # what is computed once from this generation (levels' windows)

    def _open(self, files: str) -> None:
        self._file, self.embeddings = open_npy(os.path.join(files, "embeddings.npy"))
        try:
            frames = pq.read_table(os.path.join(files, "frames.parquet"))
            videos = pq.read_table(os.path.join(files, "videos.parquet"))
        except BaseException:
            self._file.close()
            raise
        self.files = files
        self.frame_video = frames.column("video").to_numpy()
        self.frame_time = frames.column("timestamp").to_numpy()
        self.videos = videos.to_pylist()
        # Frames of a video are contiguous: video v is rows offsets[v]:offsets[v + 1].
        counts = np.bincount(self.frame_video, minlength=len(self.videos))
        self.offsets = np.concatenate([[0], np.cumsum(counts)])

    def path(self, name: str) -> str:
        """A file of this index's generation (where its ANN index is kept)."""
        return os.path.join(self.files, name)

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
        of frames keeps the process's memory at a slice (the OS page cache still helps).
        Safe to call from several threads at once."""
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
        row_bytes = dim * self.embeddings.itemsize
        for lo in range(0, n, slice_rows):  # from the file opened at start: this generation's
            rows = buffer[: min(slice_rows, n - lo)]
            read_rows(self._file.fileno(), self.embeddings.offset + lo * row_bytes, rows)
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


def build_index(dataset: str, folder: str | None = None) -> str:
    """Write the search index of ``dataset`` (a folder or fsspec URL) unless an up-to-date one
    exists; returns its folder (see :func:`index_folder`)."""
    folder = folder or index_folder(dataset)
    urls, identity = dataset_identity(dataset)
    shards = [u.rstrip("/").rsplit("/", 1)[-1] for u in urls]
    current = read_pointer(folder) if os.path.isdir(folder) else None
    generation = generation_of(current)
    run = read_run(dataset)
    window = run_window(run)  # the span of a row without a window of its own (levels.py)
    if (generation and current.get("identity") == identity
            and current.get("run_window", [None, None]) == list(window)
            and os.path.isdir(os.path.join(folder, generation))):  # fmt: skip
        return folder

    def videos() -> Iterator[tuple[dict, np.ndarray, np.ndarray]]:
        for key, embeddings, meta in iter_samples(dataset):
            if embeddings is None or len(embeddings) == 0:
                continue
            meta = in_run_window(meta, window)
            video = {k: meta.get(k) for k in ("location", "caption", "duration", "start", "end")}
            video["key"] = key
            video["id"] = None if meta.get("id") is None else str(meta["id"])
            times = meta.get("timestamps") or np.arange(len(embeddings))
            yield video, embeddings, np.asarray(times, np.float64)

    info = {"shards": shards, "identity": identity, "model": run.get("model"),
            "pretrained": run.get("pretrained"), "run_window": list(window)}  # fmt: skip
    try:
        write_index(folder, videos(), info)
    except ValueError as exc:
        raise ValueError(f"{dataset}: {exc}") from exc
    return folder


def write_index(
    folder: str, videos: Iterator[tuple[dict, np.ndarray, np.ndarray]], info: dict
) -> None:
    """Write a search index from ``(video metadata, embeddings, timestamps)`` per video,
    streaming the embeddings (L2-normalised, float16) to disk, as a new generation of
    ``folder`` (:mod:`.store`): complete before it becomes the current one."""
    generation = new_generation()
    files = partial_folder(folder, generation)
    writer: NpyWriter | None = None
    frame_video: list[np.ndarray] = []
    frame_time: list[np.ndarray] = []
    table: list[dict] = []
    try:
        for video, embeddings, times in videos:
            e = np.asarray(embeddings, np.float32)
            e = e / (np.linalg.norm(e, axis=1, keepdims=True) + 1e-12)
            if writer is None:  # the folder only once there is something to index
                os.makedirs(files)
                path = os.path.join(files, "embeddings.npy")
                writer = NpyWriter(path, (e.shape[1],), dtype=np.float16)
            writer.append(e.astype(np.float16))
            frame_video.append(np.full(len(e), len(table), np.int32))
            frame_time.append(np.asarray(times, np.float64))
            table.append(video)
        if writer is None or writer.count == 0:
            raise ValueError("no successfully encoded video to search")
        writer.close()
        frames = pa.table({"video": np.concatenate(frame_video),
                           "timestamp": np.concatenate(frame_time)})  # fmt: skip
        pq.write_table(frames, os.path.join(files, "frames.parquet"))
        pq.write_table(pa.Table.from_pylist(table), os.path.join(files, "videos.parquet"))
        os.rename(files, os.path.join(folder, generation))
    except BaseException:
        if writer is not None:
            with contextlib.suppress(OSError):
                writer.discard()  # closes its file (removed already if it was complete)
        shutil.rmtree(files, ignore_errors=True)
        raise
    info = {**info, "frames": int(sum(map(len, frame_time))), "videos": len(table)}
    commit(folder, generation, info)


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


def iter_top_frames(index: SearchIndex, query: np.ndarray, k: int) -> Iterator[tuple[int, float]]:
    """The ``k`` best frames (row, score), exactly, best first."""
    scores = index.scores(query)
    k = min(k, len(scores))
    top = np.argpartition(-scores, k - 1)[:k]
    for row in top[np.argsort(-scores[top], kind="stable")]:
        yield int(row), float(scores[row])
