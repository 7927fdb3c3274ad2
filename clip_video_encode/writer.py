"""Writing one output shard: ``NAME.tar``, ``NAME.parquet``, then ``NAME_stats.json``.

Samples may finish in any order; they are written into the tar in input order as soon as
they are contiguous, so a shard of long videos is never held whole. The tar and parquet are
written under temporary names and renamed; ``NAME_stats.json`` comes last and is the commit
marker: a shard without it is redone from scratch. Tar members carry fixed metadata
(mtime 0), so the same input gives the same bytes from every executor.

Every sample has the same members, as webdataset pipelines and Hugging Face ``datasets``
require: a failed row's ``KEY.npy`` holds zero frames, and when the input has captions every
row has a ``KEY.txt`` (empty when its caption is missing).
"""

from __future__ import annotations

import io
import json
import time
from collections import Counter
from dataclasses import dataclass, field

import numpy as np
import pyarrow as pa
import pyarrow.parquet as pq

from video2numpy.status import SUCCESS

PARQUET_COLUMNS = [
    "key", "id", "location", "caption", "status", "error_message", "n_frames", "duration",
    "source_fps", "width", "height", "start", "end", "split",
]  # fmt: skip


@dataclass
class Sample:
    """One input row's result. ``embeddings`` is None for a failed row."""

    index: int  # position in the shard
    key: str
    meta: dict  # becomes KEY.json
    embeddings: np.ndarray | None = None
    caption: str | None = None
    extra: dict = field(default_factory=dict)


def stats_path(dest: str, name: str) -> str:
    return f"{dest}/{name}_stats.json"


class ShardWriter:
    def __init__(
        self,
        fs,
        dest: str,
        name: str,
        n_rows: int | None,
        embed_dim: int,
        captions: bool,
        output_format: str = "webdataset",
        rows_sha256: str = "",
    ) -> None:
        """``n_rows`` may be None until known (an input tar still being read).
        ``output_format`` "files" writes a folder ``NAME/`` of files instead of ``NAME.tar``.
        ``rows_sha256``: the content hash of the shard's input rows, kept in the stats so that
        a rerun on a changed table can tell which committed shards still stand."""
        import webdataset as wds

        self.fs, self.dest, self.name, self.n_rows = fs, dest, name, n_rows
        self.embed_dim, self.captions = embed_dim, captions
        self.rows_sha256 = rows_sha256
        self.began = time.time()
        self._final = f"{dest}/{name}" + ("" if output_format == "files" else ".tar")
        self._tmp = f"{self._final}.partial"
        if output_format == "files":
            if fs.exists(self._tmp):
                fs.rm(self._tmp, recursive=True)
            fs.makedirs(self._tmp, exist_ok=True)
            self._file = self._tar = None
        else:
            self._file = fs.open(self._tmp, "wb")
            self._tar = wds.TarWriter(self._file, mtime=0, user="", group="", encoder=False)
        self._pending: dict[int, Sample] = {}
        self._next = 0
        self._rows: list[dict] = []
        self._statuses: Counter[str] = Counter()
        self._frames = 0

    def add(self, sample: Sample) -> None:
        """Accept a finished sample; writes it and any that now follow it in order."""
        self._pending[sample.index] = sample
        while self._next in self._pending:
            self._write(self._pending.pop(self._next))
            self._next += 1

    @property
    def complete(self) -> bool:
        return self._next == self.n_rows

    def _write(self, sample: Sample) -> None:
        entry: dict = {"__key__": sample.key}
        embeddings = sample.embeddings
        if embeddings is None:
            embeddings = np.zeros((0, self.embed_dim), dtype=np.float16)
        buf = io.BytesIO()
        np.save(buf, np.ascontiguousarray(embeddings, dtype=np.float16))
        entry["npy"] = buf.getvalue()
        if self.captions:
            entry["txt"] = (sample.caption or "").encode("utf-8")
        entry["json"] = json.dumps(sample.meta, ensure_ascii=False).encode("utf-8")
        if self._tar is not None:
            self._tar.write(entry)
        else:
            for ext, data in entry.items():
                if ext != "__key__":
                    self.fs.pipe_file(f"{self._tmp}/{sample.key}.{ext}", data)
        status = sample.meta.get("status")
        self._statuses[status] += 1
        self._frames += int(sample.meta.get("n_frames") or 0)
        row = {c: sample.meta.get(c) for c in PARQUET_COLUMNS}
        row["caption"] = sample.caption
        row.update({k: v for k, v in sample.extra.items() if k not in row})
        self._rows.append(row)

    def close(self) -> dict:
        """Finish the shard: tar, parquet, and last the stats (the commit marker)."""
        if not self.complete:
            raise RuntimeError(f"shard {self.name}: {self._next} of {self.n_rows} rows written")
        if self._tar is not None:
            self._tar.close()  # webdataset's TarWriter leaves the stream it was given open
            _sync(self._file)
            self._file.close()
        if self.fs.exists(self._final):  # a folder left by an interrupted run
            self.fs.rm(self._final, recursive=True)
        if self._tar is None:
            _move_folder(self.fs, self._tmp, self._final)
        else:
            self.fs.mv(self._tmp, self._final)
        table = pa.Table.from_pylist(self._rows) if self._rows else pa.table({"key": []})
        parquet_tmp = f"{self.dest}/{self.name}.parquet.partial"
        with self.fs.open(parquet_tmp, "wb") as f:
            pq.write_table(table, f)
            _sync(f)
        self.fs.mv(parquet_tmp, f"{self.dest}/{self.name}.parquet")
        successes = self._statuses.get(SUCCESS, 0)
        stats = {
            "shard": self.name,
            "count": self.n_rows,
            "successes": successes,
            "failed": self.n_rows - successes,
            "status_dict": dict(sorted(self._statuses.items())),
            "frames": self._frames,
            "rows_sha256": self.rows_sha256,
            "start_time": self.began,
            "end_time": time.time(),
        }
        marker = stats_path(self.dest, self.name)
        with self.fs.open(f"{marker}.partial", "w") as f:
            json.dump(stats, f, indent=1, allow_nan=False)
            _sync(f)
        self.fs.mv(f"{marker}.partial", marker)  # the commit: whole, or not there at all
        return stats

    def abort(self) -> None:
        try:
            if self._tar is not None:
                self._tar.close()
                self._file.close()
            self.fs.rm(self._tmp, recursive=True)
        except Exception:
            pass


def _sync(f) -> None:
    """Flush a local file to stable storage before it is committed: a power cut must not
    leave a committed marker next to data still in the page cache. Object stores have no such
    step (an upload is durable when it returns)."""
    import os

    f.flush()
    try:
        os.fsync(f.fileno())
    except (AttributeError, OSError, ValueError, io.UnsupportedOperation):
        pass  # not a local file


def _move_folder(fs, src: str, dest: str) -> None:
    """Move a shard's folder. On object stores a folder is only a prefix, so its files are
    moved one by one (fsspec's recursive move fails on the prefix itself there)."""
    from fsspec.implementations.local import LocalFileSystem

    if isinstance(fs, LocalFileSystem):
        fs.mv(src, dest, recursive=True)
        return
    for path in fs.find(src):
        fs.mv(path, dest + path[len(src.rstrip("/")) :])
    try:
        fs.rm(src, recursive=True)
    except FileNotFoundError:
        pass  # nothing left under the prefix
