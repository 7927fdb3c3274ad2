"""Writing one output shard: ``NAME.tar``, ``NAME.parquet``, then ``NAME_stats.json``.

Samples may finish in any order; they are written into the tar in input order as soon as
they are contiguous, so a shard of long videos is never held whole. The tar and parquet are
written under temporary names and renamed; ``NAME_stats.json`` comes last and is the commit
marker: a shard without it is redone from scratch. Tar members carry fixed metadata
(mtime 0), so the same input gives the same bytes from every executor. Every path written,
renamed or removed here passes :func:`owned.inside` first: nothing outside ``--dest``.

Every sample has the same members, as webdataset pipelines and Hugging Face ``datasets``
require: a failed row's ``KEY.npy`` holds zero frames, and when the input has captions every
row has a ``KEY.txt`` (empty when its caption is missing).
"""

from __future__ import annotations

import contextlib
import errno
import io
import json
import time
from collections import Counter
from dataclasses import dataclass, field

import numpy as np
import pyarrow as pa
import pyarrow.parquet as pq

from video2numpy.jsonsafe import dumps, plain
from video2numpy.status import SUCCESS

from ..destination.folder import stats_path
from ..destination.owned import inside
from .card import merge_features, value_feature

# The parquet's own columns, typed once: a column that is null in a whole shard must not be
# typed null there, or readers of the whole dataset fail to unify the shards' schemas.
PARQUET_SCHEMA = pa.schema([
    ("key", pa.string()), ("id", pa.string()), ("location", pa.string()),
    ("caption", pa.string()), ("status", pa.string()), ("error_message", pa.string()),
    ("warning", pa.string()), ("n_frames", pa.int64()), ("duration", pa.float64()),
    ("source_fps", pa.float64()), ("width", pa.int64()), ("height", pa.int64()),
    ("start", pa.float64()), ("end", pa.float64()), ("split", pa.string()),
])  # fmt: skip
PARQUET_COLUMNS = PARQUET_SCHEMA.names


@dataclass
class Sample:
    """One input row's result. ``embeddings`` is None for a failed row."""

    index: int  # position in the shard
    key: str
    meta: dict  # becomes KEY.json
    embeddings: np.ndarray | None = None
    caption: str | None = None
    extra: dict = field(default_factory=dict)
    # A committed sample kept as it is (--retry-failed): its stored members and parquet row.
    members: dict[str, bytes] | None = None
    row: dict | None = None
    shard_error: str | None = None  # the input tar is damaged here (its shard's stats say so)


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
        io_retries: int = 5,
        extra_types: dict[str, pa.DataType] | None = None,
        replaces: bool = False,
        json_fields: dict | None = None,
    ) -> None:
        """``n_rows`` may be None until known (an input tar still being read).
        ``output_format`` "files" writes a folder ``NAME/`` of files instead of ``NAME.tar``.
        ``rows_sha256``: the content hash of the shard's input rows, kept in the stats so that
        a rerun on a changed table can tell which committed shards still stand.
        ``replaces``: the shard is committed already and is being rewritten (--retry-failed):
        its marker is removed just before the new files take the final names.
        ``json_fields``: for input tars, the types of json fields of samples kept from the
        shard being rewritten (the stats record the types of every field the shard holds,
        for the dataset card)."""
        import webdataset as wds

        self.fs, self.dest, self.name, self.n_rows = fs, dest, name, n_rows
        self.embed_dim, self.captions = embed_dim, captions
        self.rows_sha256 = rows_sha256
        self.io_retries = io_retries
        # Types of the copied columns, fixed for the whole run (from the input's schema); None
        # (tar input, whose json fields are known only as they come): stored as text.
        self.extra_types = extra_types
        self.replaces = replaces
        self._json_fields = dict(json_fields or {})
        self._json_values: dict[str, list] = {}  # an input tar's json fields, as written
        self._error: str | None = None  # the input tar's damage, for the stats
        self._source: str | None = None  # the input tar's own name, when the shard's differs
        self.began = time.time()
        self._final = self._at(f"{dest}/{name}" + ("" if output_format == "files" else ".tar"))
        self._tmp = self._at(f"{self._final}.partial")
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
        self._warnings = 0

    def _at(self, path: str) -> str:
        """``path``, checked to lie inside the destination (or refused)."""
        return inside(self.dest, path, self.fs)

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
        if sample.shard_error:
            self._error = sample.shard_error
        if sample.members is not None:
            self._store(sample.key, sample.members)
            self._count(sample.row)
            return
        entry: dict = {"__key__": sample.key}
        embeddings = sample.embeddings
        if embeddings is None:
            embeddings = np.zeros((0, self.embed_dim), dtype=np.float16)
        buf = io.BytesIO()
        np.save(buf, np.ascontiguousarray(embeddings, dtype=np.float16))
        entry["npy"] = buf.getvalue()
        if self.captions:
            entry["txt"] = (sample.caption or "").encode("utf-8")
        entry["json"] = dumps(sample.meta, ensure_ascii=False).encode("utf-8")
        del entry["__key__"]
        self._store(sample.key, entry)
        row = {c: sample.meta.get(c) for c in PARQUET_COLUMNS}
        row["caption"] = sample.caption
        row["id"] = None if row["id"] is None else str(row["id"])
        row.update({k: v for k, v in sample.extra.items() if k not in row})
        if self.extra_types is None:
            for k, v in sample.extra.items():
                self._json_values.setdefault(k, []).append(plain(v))
        self._count(row)

    def _store(self, key: str, members: dict[str, bytes]) -> None:
        if self._tar is not None:
            self._tar.write({"__key__": key, **members})
        else:
            for ext, data in members.items():
                self.fs.pipe_file(self._at(f"{self._tmp}/{key}.{ext}"), data)

    def _count(self, row: dict) -> None:
        self._statuses[row["status"]] += 1
        self._frames += int(row.get("n_frames") or 0)
        self._warnings += bool(row.get("warning"))
        if self._source is None:
            self._source = row.get("source_shard")
        self._rows.append(row)

    def close(self) -> dict:
        """Finish the shard: tar, parquet, and last the stats (the commit marker). A commit
        that fails midway removes what it put under final names, so no reader mistakes a
        shard without its marker for a finished one; the rerun redoes the shard."""
        if not self.complete:
            raise RuntimeError(f"shard {self.name}: {self._next} of {self.n_rows} rows written")
        parquet = self._at(f"{self.dest}/{self.name}.parquet")
        try:
            return self._commit(parquet)
        except BaseException:
            for path in (self._final, parquet, f"{parquet}.partial", f"{self._marker}.partial"):
                with contextlib.suppress(Exception):
                    if self.fs.exists(self._at(path)):
                        self.fs.rm(path, recursive=True)
            raise

    @property
    def _marker(self) -> str:
        return self._at(stats_path(self.dest, self.name))

    def _commit(self, parquet: str) -> dict:
        data_bytes = None
        if self._tar is not None:
            self._tar.close()  # webdataset's TarWriter leaves the stream it was given open
            _sync(self._file)
            data_bytes = self._file.tell()
            self._file.close()
        retry = Retrying(self.io_retries)
        if self.replaces:  # un-commit the shard being rewritten, then replace its files
            retry(f"removing {self._marker}", self._remove_marker)
        retry(f"removing {self._final}", self._remove_final)
        if self._tar is None:
            retry(f"moving {self._tmp}", _move_folder, self.fs, self._tmp, self._final, self.dest)
        else:
            retry(f"moving {self._tmp}", self._move, self._tmp, self._final)
        parquet_bytes = retry(f"writing {parquet}", self._write_parquet, parquet)
        # Verified in place, with their sizes, before the marker says so.
        retry(f"checking {self._final}", self._check_size, self._final, data_bytes)
        retry(f"checking {parquet}", self._check_size, parquet, parquet_bytes)
        successes = self._statuses.get(SUCCESS, 0)
        stats = {
            "shard": self.name,
            "count": self.n_rows,
            "successes": successes,
            "failed": self.n_rows - successes,
            "status_dict": dict(sorted(self._statuses.items())),
            "frames": self._frames,
            "warnings": self._warnings,
            "rows_sha256": self.rows_sha256,
            **({"json_fields": self._fields()} if self.extra_types is None else {}),
            **({"source_shard": self._source} if self._source is not None else {}),
            **({"error": self._error} if self._error else {}),
            "tar_bytes": data_bytes,
            "parquet_bytes": parquet_bytes,
            "start_time": self.began,
            "end_time": time.time(),
        }
        retry(f"writing {self._marker}", self._write_marker, stats)
        return stats

    def _fields(self) -> dict:
        """The Hugging Face types of an input tar's json fields in this shard."""
        fields = dict(self._json_fields)
        for name, values in self._json_values.items():
            fields[name] = merge_features(fields.get(name), value_feature(values))
        return fields

    def _move(self, src: str, dest: str) -> None:
        src, dest = self._at(src), self._at(dest)
        if not self.fs.exists(src) and self.fs.exists(dest):
            return  # an attempt that failed after its copy (an object store's move)
        self.fs.mv(src, dest)

    def _remove_marker(self) -> None:
        if self.fs.exists(self._marker):
            self.fs.rm(self._marker)

    def _remove_final(self) -> None:
        if self.fs.exists(self._final):  # a folder left by an interrupted run
            self.fs.rm(self._final, recursive=True)

    def _write_parquet(self, parquet: str) -> int:
        with self.fs.open(self._at(f"{parquet}.partial"), "wb") as f:
            pq.write_table(_parquet_table(self._rows, self.extra_types), f)
            _sync(f)
            size = f.tell()
        self._move(f"{parquet}.partial", parquet)
        return size

    def _check_size(self, path: str, expected: int | None) -> None:
        if expected is None:
            return
        self.fs.invalidate_cache(self.dest)
        stored = self.fs.size(path)
        if stored != expected:
            raise OSError(f"{path}: {stored} bytes stored, {expected} written")

    def _write_marker(self, stats: dict) -> None:
        text = json.dumps(stats, indent=1, allow_nan=False)
        if _is_local(self.fs):  # whole or absent: written aside, flushed, renamed
            with self.fs.open(self._at(f"{self._marker}.partial"), "w") as f:
                f.write(text)
                _sync(f)
            self.fs.mv(self._at(f"{self._marker}.partial"), self._marker)
        else:  # an object store's PUT is atomic: one request, last
            self.fs.pipe_file(self._marker, text.encode())

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


def _move_folder(fs, src: str, dest: str, root: str) -> None:
    """Move a shard's folder (both inside ``root``, the destination). On object stores a
    folder is only a prefix, so its files are moved one by one (fsspec's recursive move fails
    on the prefix itself there)."""
    from fsspec.implementations.local import LocalFileSystem

    src, dest = inside(root, src, fs), inside(root, dest, fs)
    if isinstance(fs, LocalFileSystem):
        fs.mv(src, dest, recursive=True)
        return
    for path in fs.find(src):
        fs.mv(inside(root, path, fs), inside(root, dest + path[len(src.rstrip("/")) :], fs))
    try:
        fs.rm(src, recursive=True)
    except FileNotFoundError:
        pass  # nothing left under the prefix


def _parquet_table(rows: list[dict], extra_types: dict[str, pa.DataType] | None) -> pa.Table:
    """The shard's parquet: our columns with their fixed types, then the copied columns with
    the run's types, so that every shard has the same schema (a column that is null in a
    whole shard is not typed ``null`` there)."""
    columns = {f.name: pa.array([r.get(f.name) for r in rows], f.type) for f in PARQUET_SCHEMA}
    if extra_types is None:  # tar input: each json field as text (JSON for non-strings)
        names = list(dict.fromkeys(k for r in rows for k in r if k not in columns))
        for name in names:
            values = [r.get(name) for r in rows]
            columns[name] = pa.array([_as_text(v) for v in values], pa.string())
    else:
        for name, kind in extra_types.items():
            if name not in columns:
                columns[name] = pa.array([r.get(name) for r in rows], kind)
    return pa.table(columns)


def _as_text(value) -> str | None:
    if value is None or isinstance(value, str):
        return value
    return dumps(value)


def _is_local(fs) -> bool:
    from fsspec.implementations.local import LocalFileSystem

    return isinstance(fs, LocalFileSystem)


class StorageRefused(OSError):
    """The destination kept refusing a commit step after every retry."""


# Errors an object store or a network gives for a while and then not: throttling (SlowDown,
# 503: s3fs raises EBUSY), resets and timeouts. A full disk or a refused permission is not.
_TRANSIENT = {errno.EBUSY, errno.EAGAIN, errno.ETIMEDOUT, errno.ECONNRESET, errno.ECONNREFUSED,
              errno.ECONNABORTED, errno.EPIPE}  # fmt: skip


def is_transient(exc: BaseException) -> bool:
    if isinstance(exc, (ConnectionError, TimeoutError)):
        return True
    return isinstance(exc, OSError) and exc.errno in _TRANSIENT


class Retrying:
    """Runs a commit step again, with exponential backoff, while it fails transiently (each
    attempt is itself retried request by request by the object store's client)."""

    def __init__(self, retries: int, first_wait: float = 0.5, max_wait: float = 30.0) -> None:
        self.retries, self.first_wait, self.max_wait = retries, first_wait, max_wait

    def __call__(self, what: str, fn, *args):
        for attempt in range(self.retries + 1):
            try:
                return fn(*args)
            except Exception as exc:
                if not is_transient(exc):
                    raise
                if attempt == self.retries:
                    raise StorageRefused(
                        errno.EBUSY,
                        f"the destination kept refusing {what} ({type(exc).__name__}: {exc}):"
                        f" {self.retries + 1} attempts over about"
                        f" {self._waited(attempt):.0f} s (--io-retries {self.retries})",
                    ) from exc
                time.sleep(min(self.first_wait * 2**attempt, self.max_wait))

    def _waited(self, attempts: int) -> float:
        return sum(min(self.first_wait * 2**i, self.max_wait) for i in range(attempts))
