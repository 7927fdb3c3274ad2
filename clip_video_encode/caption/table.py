"""The caption table: its columns, its shards with their commit markers, and the final file.

``--out captions.parquet`` is assembled from per-shard parts in ``captions.parquet.parts/``:

```
captions.parquet.parts/
  run.json              the run's settings and the digests of what it loaded (bound on resume)
  00000.parquet         one shard's rows, written aside and renamed
  00000_stats.json      written last: the shard's commit marker (as clip-video-encode's)
captions.parquet        all committed shards, in order, once every shard is committed
```

A rerun with the same settings skips committed shards and redoes the others from scratch, so a
run killed at any moment and rerun gives the same bytes as one that never stopped. The final
file is written aside and renamed, and only over a file this run's parts folder vouches for.
Its columns are those ``clip-video-encode`` reads (``location``, ``caption``, ``id``,
``start``, ``end``, ``split``) and the record of each clip; the parquet's metadata carries
``run.json`` under :data:`META_KEY`.
"""

from __future__ import annotations

import contextlib
import json
import os
import time
from collections import Counter

import fsspec
import pyarrow as pa
import pyarrow.parquet as pq

from video2numpy.jsonsafe import dumps, plain

META_KEY = b"clip_video_caption"
CAPTION_MODES = ("fill", "keep", "replace")
SCHEMA = pa.schema([
    ("key", pa.string()), ("id", pa.string()), ("location", pa.string()),
    ("start", pa.float64()), ("end", pa.float64()), ("window", pa.int64()),
    ("caption", pa.string()), ("generated_caption", pa.string()),
    ("input_caption", pa.string()), ("caption_source", pa.string()),
    ("status", pa.string()), ("error_message", pa.string()), ("warning", pa.string()),
    ("frame_timestamps", pa.list_(pa.float64())), ("duration", pa.float64()),
    ("split", pa.string()),
    ("model", pa.string()), ("revision", pa.string()), ("processor", pa.string()),
    ("tokenizer", pa.string()), ("num_frames", pa.int64()), ("num_beams", pa.int64()),
    ("min_length", pa.int64()), ("max_length", pa.int64()), ("precision", pa.string()),
])  # fmt: skip
RESERVED = set(SCHEMA.names)
_SETTINGS = ("model", "revision", "processor", "tokenizer", "num_frames", "num_beams",
             "min_length", "max_length", "precision")  # fmt: skip


class RunMismatch(Exception):
    """The parts folder holds a run with other settings or input."""


def parts_path(out: str) -> str:
    return f"{out.rstrip('/')}.parts"


def check_out(out: str, src: str) -> None:
    """``--out`` must name a parquet file (what clip-video-encode reads by its suffix), and
    neither the input nor a place inside it: the input is read, never written over."""
    if not out.split("?", 1)[0].lower().endswith(".parquet"):
        raise ValueError(
            f"--out {out}: the caption table is a parquet file; name it NAME.parquet"
            " (clip-video-encode then reads it as input)"
        )
    leaf = os.path.basename(parts_path(out).rstrip("/"))
    if len(leaf.encode("utf-8", "surrogateescape")) > 255 - len(".partial"):
        raise ValueError(
            f"--out {out}: the name is too long; its parts folder ({leaf[:40]}...) and their"
            " temporary names must fit file systems' 255 bytes: use a shorter name"
        )
    if "://" in out or "://" in src:
        same = out.rstrip("/") == src.rstrip("/")
    else:
        mine, theirs = os.path.realpath(out), os.path.realpath(src)
        same = mine == theirs or os.path.realpath(parts_path(out)).startswith(theirs + os.sep)
    if same:
        raise ValueError(
            f"--out {out} is the input ({src}) or inside it: the input is read, never written"
            " over; choose another --out"
        )


def caption_of(mode: str, per: str, given, generated: str | None) -> tuple[str | None, str | None]:
    """(caption, caption_source) of one clip. ``fill``: the input's caption where it has one
    for this very clip (``--per row``; a row's caption is not a window's, nor a whole video's
    when the row had a window), else the generated one; ``keep``: the input's as it is;
    ``replace``: the generated one."""
    text = given if isinstance(given, str) and given.strip() else None
    if mode == "keep":
        return given, "input" if given is not None else None
    if mode == "fill" and per == "row" and text is not None:
        return given, "input"
    return generated, "generated" if generated is not None else None


def output_row(row: dict, clip, generated: str | None, settings: dict, mode: str, per: str,
               key: str) -> dict:  # fmt: skip
    """One row of the table, from the input row, its clip and the run's settings."""
    given = row.get("caption")
    if isinstance(given, list):  # a dataset's several captions: the first is its caption
        given = given[0] if given else None
    given = None if given is None else str(given)
    caption, source = caption_of(mode, per, given, generated)
    warning = "; ".join(w for w in (row.get("input_warning"), clip.warning) if w) or None
    out = {
        "key": key,
        "id": None if row.get("id") is None else str(plain(row.get("id"))),
        "location": row.get("location"),
        "start": clip.start,
        "end": clip.end,
        "window": clip.window,
        "caption": caption,
        "generated_caption": generated,
        "input_caption": given,
        "caption_source": source,
        "status": clip.status,
        "error_message": clip.error_message,
        "warning": warning,
        "frame_timestamps": clip.timestamps,
        "duration": clip.duration,
        "split": None if row.get("split") is None else str(row.get("split")),
        **{k: settings.get(k) for k in _SETTINGS},
    }
    out.update(row.get("extra", {}))
    return out


def shard_table(rows: list[dict], carried: dict[str, pa.DataType | None]) -> pa.Table:
    """A shard's rows with the fixed columns, then the carried ones: typed as the input
    table has them, or as text (JSON for other values) when they come from tars' json."""
    columns = {f.name: pa.array([r.get(f.name) for r in rows], f.type) for f in SCHEMA}
    names = list(carried) + [k for r in rows for k in r if k not in columns and k not in carried]
    for name in dict.fromkeys(names):
        kind = carried.get(name)
        values = [r.get(name) for r in rows]
        if kind is None:
            values = [v if v is None or isinstance(v, str) else dumps(v) for v in values]
            kind = pa.string()
        columns[name] = pa.array(values, kind)
    return pa.table(columns)


class Parts:
    """The parts folder of one ``--out``: ``run.json``, committed shards, the final file."""

    def __init__(self, out: str) -> None:
        self.out = out
        self.fs, path = fsspec.core.url_to_fs(out)
        self.out_path = path.rstrip("/")
        self.path = parts_path(self.out_path)

    def prepare(self) -> None:
        """Refuse a place that is not ours (a file at the parts path, an existing ``--out``
        no parts folder vouches for), then make the parts folder: before the run's lease,
        which lives in it, and before anything is written."""
        fs = self.fs
        fs.invalidate_cache(self.path)
        if fs.exists(self.path) and not fs.isdir(self.path):
            raise RunMismatch(
                f"{self.path} exists and is not a parts folder: remove it or choose another --out"
            )
        if not fs.exists(f"{self.path}/run.json") and fs.exists(self.out_path):
            raise RunMismatch(
                f"{self.out} exists and is not this tool's output with its parts folder"
                f" ({self.path}): remove it or choose another --out"
            )
        fs.makedirs(self.path, exist_ok=True)

    def bind(self, settings: dict, binding: tuple[str, ...]) -> None:
        """Write ``run.json``, or check a previous one: other settings are refused. Called
        after :meth:`prepare`, holding the lease."""
        fs, run = self.fs, f"{self.path}/run.json"
        self.prepare()
        if not fs.exists(run):
            self._write_json(run, settings)
            return
        try:
            previous = json.loads(fs.cat_file(run))
        except ValueError as exc:
            raise RunMismatch(f"{run} is not JSON ({exc}): remove {self.path} to start"
                              " again") from exc  # fmt: skip
        diff = [k for k in binding if _same(previous.get(k)) != _same(settings.get(k))]
        if diff:
            lines = "; ".join(
                f"{k}: {previous.get(k)!r} there, {settings.get(k)!r} now" for k in diff
            )
            raise RunMismatch(
                f"{self.path} holds a run with other settings or input ({lines}). Use"
                " another --out, or rerun with the same settings to resume."
            )

    def committed(self) -> dict[str, dict]:
        """Shard name -> stats, for every shard whose marker parses and whose parquet is
        there with the size the marker recorded."""
        fs = self.fs
        fs.invalidate_cache(self.path)
        try:
            listing = {e["name"].rstrip("/").rsplit("/", 1)[-1]: e
                       for e in fs.ls(self.path, detail=True)}  # fmt: skip
        except FileNotFoundError:
            return {}
        done = {}
        for name, entry in listing.items():
            if not name.endswith("_stats.json") or not entry.get("size"):
                continue
            try:
                stats = json.loads(fs.cat_file(f"{self.path}/{name}"))
            except (ValueError, OSError):
                continue
            shard = name[: -len("_stats.json")]
            data = listing.get(f"{shard}.parquet")
            if isinstance(stats, dict) and data and data.get("size") == stats.get("bytes"):
                done[shard] = stats
        return done

    def commit(self, name: str, table: pa.Table, settings: dict, digest: str) -> dict:
        """Write a shard's parquet aside, rename it, then its marker (the commit)."""
        began = time.time()
        fs, final = self.fs, f"{self.path}/{name}.parquet"
        marker = f"{self.path}/{name}_stats.json"
        if fs.exists(marker):  # a shard being redone: un-commit it first
            fs.rm(marker)
        with fs.open(f"{final}.partial", "wb") as f:
            pq.write_table(_with_meta(table, settings), f)
            _sync(f)
        fs.mv(f"{final}.partial", final)
        statuses = Counter(table.column("status").to_pylist())
        stats = {
            "shard": name,
            "count": table.num_rows,
            "status_dict": dict(sorted(statuses.items())),
            "rows_sha256": digest,
            "bytes": fs.size(final),
            "end_time": round(time.time(), 3),
            "seconds": round(time.time() - began, 3),
        }
        self._write_json(marker, stats)
        return stats

    def remove_partials(self) -> None:
        """What an interrupted run left aside (never a committed file; the lease keeps a live
        run's files in progress from any other run)."""
        with contextlib.suppress(FileNotFoundError):
            for path in self.fs.ls(self.path, detail=False):
                if str(path).endswith(".partial"):
                    self.fs.rm(path)

    def assemble(self, names: list[str], settings: dict) -> int:
        """The final table: every shard's parts in order, streamed into ``--out`` (written
        aside, then renamed). Shards whose carried columns differ (tars' json fields) are
        unified: a column a shard lacks is null there. Returns the rows written."""
        fs = self.fs
        tables = [f"{self.path}/{n}.parquet" for n in names]
        schemas = [pq.read_schema(fs.open(t, "rb")) for t in tables]
        schema = pa.unify_schemas([s.remove_metadata() for s in schemas]) if schemas else SCHEMA
        schema = _with_meta(schema.empty_table(), settings).schema
        rows = 0
        partial = f"{self.out_path}.partial"
        with fs.open(partial, "wb") as f:
            with pq.ParquetWriter(f, schema) as writer:
                for path in tables:
                    with fs.open(path, "rb") as part:
                        table = pq.read_table(part)
                    table = _conform(table, schema)
                    writer.write_table(table)
                    rows += table.num_rows
            _sync(f)
        fs.mv(partial, self.out_path)
        return rows

    def _write_json(self, path: str, value: dict) -> None:
        text = json.dumps(plain(value), indent=1, allow_nan=False, ensure_ascii=False)
        if _is_local(self.fs):  # whole or absent: written aside, flushed, renamed
            with self.fs.open(f"{path}.partial", "w") as f:
                f.write(text)
                _sync(f)
            self.fs.mv(f"{path}.partial", path)
        else:  # an object store's PUT is atomic
            self.fs.pipe_file(path, text.encode())


def _conform(table: pa.Table, schema: pa.Schema) -> pa.Table:
    columns = []
    for field in schema:
        if field.name in table.column_names:
            columns.append(table.column(field.name).cast(field.type))
        else:
            columns.append(pa.nulls(table.num_rows, field.type))
    return pa.Table.from_arrays(columns, schema=schema)


def _with_meta(table: pa.Table, settings: dict) -> pa.Table:
    meta = dict(table.schema.metadata or {})
    meta[META_KEY] = json.dumps(plain(settings), allow_nan=False, sort_keys=True).encode()
    return table.replace_schema_metadata(meta)


def _same(value):
    return json.loads(json.dumps(plain(value), default=str))


def _sync(f) -> None:
    """A local file reaches the disk before its commit (a power cut must not leave a marker
    beside data still in the page cache); object stores have no such step."""
    f.flush()
    with contextlib.suppress(AttributeError, OSError, ValueError):
        os.fsync(f.fileno())


def _is_local(fs) -> bool:
    from fsspec.implementations.local import LocalFileSystem

    return isinstance(fs, LocalFileSystem)
