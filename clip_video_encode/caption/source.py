"""What ``clip-video-caption`` reads: anything ``clip-video-encode`` reads, or an encoded dataset.

- a table (csv, tsv, parquet, jsonl, txt) or one video: read and sharded exactly as
  ``clip-video-encode`` does (:func:`..dataset.load_input`, :func:`..shards.plan_shards`), so
  the same table and ``--samples-per-shard`` give the same keys there and here;
- webdataset tars (e.g. video2dataset's output): one shard per tar, its keys kept
  (:func:`..tars.tar_rows`);
- a ``clip-video-encode`` dataset (a folder with ``run.json`` and committed shards): its rows
  and their windows, shard by shard, with the dataset's own keys, so captions join back to
  its samples by key.

Every input column that is not mapped (``location``, ``caption``, ``id``, ``start``, ``end``,
``split``) is carried into the output table; one whose name the output uses itself is carried
as ``input_<name>``, so nothing the input said is lost. ``--per video`` keeps the first row of
each location.
"""

from __future__ import annotations

import dataclasses
import hashlib
import json
from collections.abc import Callable, Iterator
from dataclasses import dataclass

import fsspec
import pyarrow as pa
import pyarrow.parquet as pq

from ..commit.writer import PARQUET_COLUMNS
from ..destination.folder import committed_shards
from ..plan.shards import Columns, Shard, input_digest, plan_shards
from ..plan.source import load_input
from ..plan.tars import expand_tars, is_tar_input, shard_names, tar_rows
from ..read import in_run_window, read_run, run_window


@dataclass
class SourceShard:
    """One shard of input rows; ``rows(scratch)`` reads them (tar members are written to the
    scratch folder given, named in each row's ``fetch``)."""

    name: str
    digest: str  # content hash of the rows this run reads ("" for a tar: not known ahead)
    size: int | None  # rows (None for a tar)
    rows: Callable[[str], Iterator[dict]]


@dataclass
class Source:
    kind: str  # "table", "tars" or "dataset"
    shards: list[SourceShard]
    digest: str | None
    rows: int | None
    carried: dict[str, pa.DataType | None]  # output name -> type (None: text, from tars)
    renamed: dict[str, str]  # output name -> the input column it carries


def is_dataset(src: str) -> bool:
    """A clip-video-encode output: a folder with ``run.json`` and a commit marker."""
    fs, path = fsspec.core.url_to_fs(src)
    path = path.rstrip("/")
    try:
        if not fs.isdir(path) or not fs.exists(f"{path}/run.json"):
            return False
        return any(str(p).endswith("_stats.json") for p in fs.ls(path, detail=False))
    except OSError:
        return False


def read_source(
    src: str,
    columns: Columns,
    samples_per_shard: int,
    per: str,
    reserved: set[str],
    encoding: str | None = None,
) -> Source:
    """Read and plan ``src``; raises ValueError or FileNotFoundError with one line that says
    what is wrong, before a model is loaded or anything is written. ``reserved``: the output
    table's own column names."""
    if is_tar_input(src):
        return _tars(src, encoding, reserved)
    if is_dataset(src):
        return _dataset(src, per, reserved)
    fs, path = fsspec.core.url_to_fs(src)
    if fs.isdir(path):
        raise ValueError(
            f"{src} is a folder, but not a clip-video-encode dataset (no run.json and"
            " committed shards): give a table of videos, tars, one video or such a dataset"
        )
    table = load_input(src, encoding)
    if table.num_rows == 0:
        raise ValueError(f"{src} has no rows: nothing to caption")
    mapped = {c for c in columns.wanted().values() if c}
    if columns.location not in table.column_names:
        raise ValueError(
            f"{src} has no column {columns.location!r} (for --location-col); its columns are:"
            f" {', '.join(table.column_names)}"
        )
    if per == "video":
        table = _first_of_each(table.column(columns.location).to_pylist(), table)
    carried_in = [c for c in table.column_names if c not in mapped]
    renamed = _rename(carried_in, reserved)
    columns = dataclasses.replace(columns, save=tuple(carried_in))
    shards = plan_shards(table, columns, samples_per_shard)
    carried = {out: table.schema.field(col).type for out, col in renamed.items()}
    return Source(
        "table",
        [SourceShard(s.name, s.digest(), s.size, _table_rows(s, renamed)) for s in shards],
        input_digest(shards),
        table.num_rows,
        carried,
        renamed,
    )


def _table_rows(shard: Shard, renamed: dict[str, str]) -> Callable[[str], Iterator[dict]]:
    back = {col: out for out, col in renamed.items()}

    def rows(scratch: str) -> Iterator[dict]:
        for row in shard.rows():
            row["extra"] = {back[k]: v for k, v in row["extra"].items()}
            yield row

    return rows


def _first_of_each(locations: list, table: pa.Table) -> pa.Table:
    """``--per video``: the first row of each location (stripped, as shards read it)."""
    seen: set[str] = set()
    keep = []
    for i, location in enumerate(locations):
        name = str(location or "").strip()
        if name not in seen:
            seen.add(name)
            keep.append(i)
    return table.take(pa.array(keep, pa.int64())) if len(keep) < table.num_rows else table


def _rename(names: list[str], reserved: set[str]) -> dict[str, str]:
    """Output name -> input column, ``input_`` prefixed where the output has the name."""
    out: dict[str, str] = {}
    for name in names:
        target = name
        while target in reserved or target in out:
            target = f"input_{target}"
        out[target] = name
    return out


def _tars(src: str, encoding: str | None, reserved: set[str]) -> Source:
    """One shard per tar, named as clip-video-encode names it (safe, unique: a tar named
    ``..tar`` is no path), its keys kept. Each sample's json fields are carried, those named
    as a column of the output (video2dataset's ``status``, ``key``, ``caption``, a ``start``)
    as ``input_NAME``, as a table's columns are."""
    urls = expand_tars(src)
    fs, _ = fsspec.core.url_to_fs(urls[0])
    remote = "://" in urls[0] and not urls[0].startswith("file://")
    missing = [u for u in (urls[:1] if remote else urls) if not fs.exists(u)]
    if missing:
        raise FileNotFoundError(f"{src}: no such tar {missing[0]}")

    def reader(url: str, name: str) -> Callable[[str], Iterator[dict]]:
        def rows(scratch: str) -> Iterator[dict]:
            for row in tar_rows(url, scratch, encoding=encoding, name=name):
                extra = row.get("extra") or {}
                if reserved & extra.keys():  # the json's own names first keep theirs
                    names = sorted(extra, key=lambda k: k in reserved)
                    row["extra"] = {out: extra[k] for out, k in _rename(names, reserved).items()}
                yield row

        return rows

    names = [name for name, _ in shard_names(urls)]
    shards = [SourceShard(n, "", None, reader(u, n)) for n, u in zip(names, urls, strict=True)]
    return Source("tars", shards, None, None, {}, {})


def _dataset(src: str, per: str, reserved: set[str]) -> Source:
    """A dataset's committed shards: each shard's parquet holds its rows (no tar is read)."""
    fs, path = fsspec.core.url_to_fs(src)
    stats, _ = committed_shards(fs, path.rstrip("/"))
    tables = {}
    for s in stats:
        with fs.open(f"{path.rstrip('/')}/{s['shard']}.parquet", "rb") as f:
            tables[s["shard"]] = pq.read_table(f)
    if not tables:
        raise ValueError(f"{src}: the dataset has no committed shard")
    ours = set(PARQUET_COLUMNS)
    first = next(iter(tables.values()))
    carried_in = [c for c in first.column_names if c not in ours]
    renamed = _rename(carried_in, reserved)
    if per == "video":
        seen: set[str] = set()
        for name, table in tables.items():
            keep = []
            for i, location in enumerate(table.column("location").to_pylist()):
                if (location or "") not in seen:
                    seen.add(location or "")
                    keep.append(i)
            tables[name] = table.take(pa.array(keep, pa.int64()))
    read = ["key", "id", "location", "caption", "start", "end", "split", *carried_in]
    window = run_window(read_run(src))  # rows without their own were sampled in the run's
    shards = []
    for name, table in tables.items():
        table = table.select([c for c in read if c in table.column_names])
        shards.append(SourceShard(name, _digest(table), table.num_rows,
                                  _dataset_rows(table, renamed, window)))  # fmt: skip
    h = hashlib.sha256()
    for shard in shards:
        h.update(f"{shard.name}:{shard.digest}".encode())
    carried = {out: first.schema.field(col).type for out, col in renamed.items()}
    return Source("dataset", shards, h.hexdigest(), sum(s.size for s in shards), carried, renamed)


def _dataset_rows(
    table: pa.Table, renamed: dict[str, str], window: tuple[float | None, float | None]
) -> Callable[[str], Iterator[dict]]:
    """The rows of a dataset's shard, each in the span its embeddings cover (its window, else
    the run's), so that captions and the hierarchy's windows of the same video line up."""

    def rows(scratch: str) -> Iterator[dict]:
        for row in table.to_pylist():
            row = in_run_window(row, window)
            yield {
                "key": row["key"],
                "id": row.get("id"),
                "location": row.get("location") or "",
                "caption": row.get("caption"),
                "start": row.get("start"),
                "end": row.get("end"),
                "split": row.get("split"),
                "extra": {out: row.get(col) for out, col in renamed.items()},
            }

    return rows


def _digest(table: pa.Table) -> str:
    h = hashlib.sha256()
    for name in sorted(table.column_names):
        h.update(json.dumps([name, table.column(name).to_pylist()], default=str).encode())
    h.update(str(table.num_rows).encode())
    return h.hexdigest()
