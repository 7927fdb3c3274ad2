"""``clip-video-hierarchy``: a dataset's frame embeddings as Video ReCap's three levels.

For each video (or each row's window, when the table gave one), from its stored timestamps:

- clip level: one feature per ``clip_seconds`` window, ``ceil(duration / clip_seconds)`` of
  them, in ``DIR/features/videos/KEY.npy`` (windows x dim);
- segment level: per ``segment_seconds`` segment (the remainder last), features at a step of
  ``min(segment_duration / min_features, clip_seconds)``, so at least ``min_features`` each,
  in ``DIR/features/segments/KEY_N.npy``;
- video level: the mean of all its frames, ``DIR/features/video/KEY.npy`` (1 x dim).

``DIR/index.parquet`` lists every file (key, id, level, segment, start_sec, end_sec,
n_features, filled, path); ``DIR/annotations/{clips,segments,videos}.json`` are shaped like
ReCap's annotation files (``vid``, ``start_sec``, ``end_sec``, ``caption``; the video level
carries the dataset's caption). Videos are read one at a time: memory holds one video.
"""

from __future__ import annotations

import io
import json
from dataclasses import dataclass

import fsspec
import numpy as np
import pyarrow as pa
import pyarrow.parquet as pq
from tqdm import tqdm

from ..read import in_run_window, iter_samples, read_run, run_window
from ..vectors import normalize
from .windows import (
    clip_edges,
    pool_windows,
    segment_bounds,
    segment_edges,
    video_span,
)

INDEX_SCHEMA = pa.schema([
    ("key", pa.string()), ("id", pa.string()), ("level", pa.string()),
    ("segment", pa.int64()), ("start_sec", pa.float64()), ("end_sec", pa.float64()),
    ("n_features", pa.int64()), ("filled", pa.int64()), ("path", pa.string()),
])  # fmt: skip


@dataclass(frozen=True)
class HierarchyOptions:
    clip_seconds: float = 4.0
    segment_seconds: float = 180.0
    min_segment_features: int = 45
    dtype: str = "float32"

    def __post_init__(self) -> None:
        if self.clip_seconds <= 0 or self.segment_seconds <= 0 or self.min_segment_features < 1:
            raise ValueError("--clip-seconds and --segment-seconds must be > 0, and"
                             " --min-segment-features >= 1")  # fmt: skip
        if self.dtype not in ("float32", "float16"):
            raise ValueError("--dtype: float32 or float16")


class TooSparse(ValueError):
    """The frames are further apart than the clip windows."""


def check_sampling(run: dict, options: HierarchyOptions) -> None:
    """Refuse, before anything is written, a dataset sampled too sparsely for the windows."""
    fps = (run.get("sampling") or {}).get("fps")
    if fps and 1.0 / fps > options.clip_seconds + 1e-9:
        raise TooSparse(
            f"the dataset was sampled at {fps:g} fps, a frame every {1 / fps:g} s: most"
            f" {options.clip_seconds:g} s clip windows would hold no frame. Encode it with"
            f" --fps {1 / options.clip_seconds:g} or more, or pass a larger --clip-seconds"
        )


def build(dataset: str, out: str, options: HierarchyOptions, progress: bool | None = None) -> dict:
    """Write the hierarchy of ``dataset`` into ``out``; returns counts."""
    run = read_run(dataset)
    check_sampling(run, options)
    window = run_window(run)  # a row without a window of its own was sampled in the run's
    fs, root = fsspec.core.url_to_fs(out)
    root = root.rstrip("/")
    for sub in ("features/videos", "features/segments", "features/video", "annotations"):
        fs.makedirs(f"{root}/{sub}", exist_ok=True)
    dtype = np.dtype(options.dtype)
    counts = {"videos": 0, "clips": 0, "segments": 0, "filled_windows": 0}
    index_rows: list[dict] = []
    annotations = {name: _JsonList(fs, f"{root}/annotations/{name}.json")
                   for name in ("clips", "segments", "videos")}  # fmt: skip
    writer = pq.ParquetWriter(fs.open(f"{root}/index.parquet", "wb"), INDEX_SCHEMA)
    bar = tqdm(unit="video", desc="hierarchy", disable=None if progress is None else not progress)
    try:
        for key, embeddings, meta in iter_samples(dataset):
            meta = in_run_window(meta, window)
            times = np.asarray(meta.get("timestamps") or [], np.float64)
            if embeddings is None or len(embeddings) == 0 or len(times) != len(embeddings):
                continue
            rows = _one_video(fs, root, key, meta, times, embeddings, options, dtype,
                              annotations)  # fmt: skip
            index_rows.extend(rows)
            counts["videos"] += 1
            counts["clips"] += rows[0]["n_features"]
            counts["segments"] += sum(1 for r in rows if r["level"] == "segment")
            counts["filled_windows"] += sum(r["filled"] for r in rows)
            if len(index_rows) >= 10_000:
                writer.write_table(pa.Table.from_pylist(index_rows, INDEX_SCHEMA))
                index_rows = []
            bar.update(1)
        if index_rows:
            writer.write_table(pa.Table.from_pylist(index_rows, INDEX_SCHEMA))
    finally:
        writer.close()
        for listing in annotations.values():
            listing.close()
        bar.close()
    return counts


def _one_video(fs, root, key, meta, times, embeddings, options, dtype, annotations):
    if len(times) > 1:
        spacing = float(np.median(np.diff(np.sort(times))))
        if spacing > options.clip_seconds + 1e-9:
            raise TooSparse(
                f"video {key}: frames every {spacing:g} s, sparser than the"
                f" {options.clip_seconds:g} s clip windows; encode with a higher --fps"
            )
    vid = None if meta.get("id") is None else str(meta["id"])
    lo, hi = video_span(meta, times)
    rows = []

    def save(path: str, features: np.ndarray) -> None:
        buf = io.BytesIO()
        np.save(buf, features.astype(dtype))
        fs.pipe_file(f"{root}/{path}", buf.getvalue())

    clips = pool_windows(times, embeddings, clip_edges(lo, hi, options.clip_seconds))
    path = f"features/videos/{key}.npy"
    save(path, clips.features)
    rows.append(_row(key, vid, "clip", None, lo, hi, len(clips.features), clips.filled, path))
    for s, e in zip(clips.starts, clips.ends, strict=True):
        annotations["clips"].add({"vid": key, "start_sec": float(s), "end_sec": float(e),
                                  "caption": None})  # fmt: skip
    for n, (s_lo, s_hi) in enumerate(segment_bounds(lo, hi, options.segment_seconds)):
        edges = segment_edges(s_lo, s_hi, options.min_segment_features, options.clip_seconds)
        segment = pool_windows(times, embeddings, edges)
        path = f"features/segments/{key}_{n}.npy"
        save(path, segment.features)
        rows.append(_row(key, vid, "segment", n, s_lo, s_hi, len(segment.features),
                         segment.filled, path))  # fmt: skip
        annotations["segments"].add({"vid": key, "sid": f"{key}_{n}", "start_sec": s_lo,
                                     "end_sec": s_hi, "caption": None})  # fmt: skip
    video = normalize(normalize(embeddings).mean(0, keepdims=True))
    path = f"features/video/{key}.npy"
    save(path, video)
    rows.append(_row(key, vid, "video", None, lo, hi, 1, 0, path))
    annotations["videos"].add({"vid": key, "start_sec": lo, "end_sec": hi,
                               "caption": meta.get("caption")})  # fmt: skip
    return rows


def _row(key, vid, level, segment, start, end, n, filled, path) -> dict:
    return {"key": key, "id": vid, "level": level, "segment": segment,
            "start_sec": float(start), "end_sec": float(end), "n_features": int(n),
            "filled": int(filled), "path": path}  # fmt: skip


class _JsonList:
    """A JSON array written element by element (memory: one element)."""

    def __init__(self, fs, path: str) -> None:
        self.file = fs.open(path, "w")
        self.file.write("[")
        self.first = True

    def add(self, value: dict) -> None:
        self.file.write(("\n" if self.first else ",\n") + json.dumps(value, allow_nan=False))
        self.first = False

    def close(self) -> None:
        self.file.write("\n]\n")
        self.file.close()
