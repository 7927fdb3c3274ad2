"""Reading what a mix is made of: encoded datasets and input tables, local or fsspec URLs.

An input is a *table* when its name ends as a table does (``.parquet``, ``.csv``, ``.tsv``,
``.jsonl``, ``.txt``, optionally ``.gz``: converter output, or any input table of
DESIGN.md section 2), else a *dataset*: a folder (or URL) with ``run.json`` and committed
shards. A dataset's rows are its parquets' rows that succeeded (a failed row has no embedding
to mix, and must not push a good copy out); an evaluation dataset's rows are all its rows,
failed too (a video of an evaluation set leaks whether or not its download worked there).

Each input has an identity (a table's content hash; a dataset's :func:`dataset_identity`) that
the mix's ``run.json`` records, so a rerun on changed inputs is refused rather than resumed.
"""

from __future__ import annotations

import hashlib
import json
import os
from collections.abc import Iterator
from dataclasses import dataclass, field

import fsspec
import numpy as np
import pyarrow as pa
import pyarrow.compute as pc
import pyarrow.parquet as pq

from video2numpy.status import SUCCESS
from video2numpy.table import is_table, open_file, read_table, text_columns

from .content import pool
from .identity import SOURCE_COLUMNS, _numbers, _strings

# Columns read for planning (those present): the source, the keep order, the split.
PLAN_COLUMNS = (*SOURCE_COLUMNS, "split", "duration", "width", "height", "n_frames", "status",
                "key")  # fmt: skip
_TEXT_COLUMNS = ("youtube_id", "location", "url", "id", "split", "status", "key")
# What identifies a model's embeddings: two datasets compare only when these agree.
MODEL_FIELDS = ("model", "pretrained", "weights_sha256", "embed_dim")


class InputError(ValueError):
    """An input cannot be used; the message says which and why."""


@dataclass
class Input:
    name: str  # as the user gave it
    kind: str  # "dataset" or "table"
    identity: str
    run: dict = field(default_factory=dict)  # a dataset's run.json
    shards: list[str] = field(default_factory=list)  # a dataset's committed shards
    failed: int = 0  # a dataset's rows that failed (not mixed), known once its rows are read
    # per number column, values that are not numbers (a time written "0:01:05"): read as none
    not_numbers: dict = field(default_factory=dict)

    def model(self) -> dict:
        """What names the model and weights of a dataset's embeddings."""
        return {k: self.run.get(k) for k in MODEL_FIELDS}

    def describe(self) -> dict:
        out = {"name": self.name, "kind": self.kind, "identity": self.identity}
        if self.kind == "dataset":
            out.update(self.model(), shards=len(self.shards))
        return out


def open_input(name: str) -> Input:
    """The input ``name`` (a table or a dataset), checked: raises :class:`InputError` with
    what is wrong and what to do."""
    if not name or not name.strip():
        raise InputError("an input name is empty")
    if is_table(name):
        try:
            return Input(name, "table", _file_sha256(name))
        except FileNotFoundError as exc:
            raise InputError(f"{name}: no such table") from exc
    url = name.rstrip("/") or name
    fs, path = fsspec.core.url_to_fs(url)
    try:
        run = json.loads(fs.cat_file(f"{path.rstrip('/')}/run.json"))
    except FileNotFoundError:
        what = "no such folder" if not fs.exists(path) else "no run.json"
        raise InputError(
            f"{name}: {what}: an input is a clip-video-encode dataset (a folder with"
            " run.json) or a table (.parquet, .csv, .tsv, .jsonl, .txt)"
        ) from None
    except (ValueError, UnicodeDecodeError) as exc:
        raise InputError(f"{name}: run.json is not JSON ({exc})") from exc
    if not isinstance(run, dict):
        raise InputError(f"{name}: run.json is not a JSON object")
    if run.get("output_format", "webdataset") != "webdataset":
        raise InputError(f"{name} was written with --output-format {run['output_format']}:"
                         " mix reads webdataset tars; encode it again as webdataset")  # fmt: skip
    from ..read import dataset_identity  # (imports torch: only for datasets)

    shards, identity = dataset_identity(url)
    return Input(name, "dataset", identity, run, shards)


def _file_sha256(name: str) -> str:
    h = hashlib.sha256()
    with open_file(name, "rb") as f:
        for block in iter(lambda: f.read(1 << 20), b""):
            h.update(block)
    return h.hexdigest()


BATCH_ROWS = 1 << 18


def iter_batches(item: Input, columns=PLAN_COLUMNS, successes_only: bool = True,
                 batch_rows: int = BATCH_ROWS) -> Iterator[pa.Table]:  # fmt: skip
    """The input's rows in batches, with the ``columns`` it has (all with None), typed (see
    :func:`_typed`), plus ``_shard`` (a dataset's shard index; 0 for a table) and ``_row``
    (the row's position in its shard or table). A parquet table streams (memory: one batch);
    other tables are read whole. A dataset gives only rows that succeeded unless
    ``successes_only`` is False (``item.failed`` counts the others once all are read)."""
    if item.kind == "table":
        position = 0
        for batch in _table_batches(item.name, columns, batch_rows):
            n = batch.num_rows
            batch = _typed(batch, item).append_column("_shard", pa.array(np.zeros(n, np.int32)))
            yield batch.append_column("_row", pa.array(np.arange(position, position + n)))
            position += n
        return
    failed = 0
    for index, url in enumerate(item.shards):
        table = _typed(_read_shard_parquet(url, columns), item)
        n = table.num_rows
        table = table.append_column("_shard", pa.array(np.full(n, index, np.int32)))
        table = table.append_column("_row", pa.array(np.arange(n, dtype=np.int64)))
        if successes_only:
            table = table.filter(pc.equal(table.column("status"), SUCCESS).fill_null(False))
            failed += n - table.num_rows
        yield table
    if successes_only:
        item.failed = failed


def read_rows(item: Input, columns=PLAN_COLUMNS, successes_only: bool = True) -> pa.Table:
    """All of :func:`iter_batches` as one table (for inputs known to be small)."""
    parts = list(iter_batches(item, columns, successes_only))
    if not parts:  # a dataset with no committed shard: no rows, the usual columns
        empty = pa.table({c: pa.array([], pa.string()) for c in (columns or PLAN_COLUMNS)})
        empty = _typed(empty).append_column("_shard", pa.array([], pa.int32()))
        return empty.append_column("_row", pa.array([], pa.int64()))
    return pa.concat_tables(parts, promote_options="permissive")


def _typed(table: pa.Table, item: Input | None = None) -> pa.Table:
    """The planning columns with one type each whatever the input typed them (an ``id`` of
    numbers, a ``start`` of text), so inputs concatenate: text, or float64 (null: NaN).
    Values of a number column that are no numbers are counted in ``item.not_numbers``."""
    for i, name in enumerate(table.column_names):
        if name.startswith("_") or name not in PLAN_COLUMNS:
            continue
        column = table.column(i).combine_chunks()
        if pa.types.is_dictionary(column.type):
            column = column.dictionary_decode()
        if name in _TEXT_COLUMNS:
            typed = _strings(column, len(column))
        else:
            typed = pa.array(_numbers(column, len(column)), pa.float64(), from_pandas=True)
            if item is not None and typed.null_count > column.null_count:
                pairs = zip(column.to_pylist(), typed.is_null().to_pylist(), strict=True)
                lost = sum(1 for v, missing in pairs if missing and str(v or "").strip())
                if lost:
                    item.not_numbers[name] = item.not_numbers.get(name, 0) + lost
        table = table.set_column(i, name, typed)
    return table


def _no_location(name: str, names: list[str]) -> InputError:
    return InputError(f"{name} has no location column (its columns: {', '.join(names)}); mix"
                      " reads input tables as video-convert writes them")  # fmt: skip


def _table_batches(name: str, columns, batch_rows: int) -> Iterator[pa.Table]:
    try:
        if name.lower().endswith(".parquet"):
            parquet = _parquet_file(name)
            names = parquet.schema_arrow.names
            if "location" not in names:
                raise _no_location(name, names)
            present = None if columns is None else [c for c in names if c in columns]
            for batch in parquet.iter_batches(batch_rows, columns=present):
                yield text_columns(pa.Table.from_batches([batch]), name)
            return
        table = read_table(name)
    except FileNotFoundError as exc:
        raise InputError(f"{name}: no such table") from exc
    except (ValueError, pa.ArrowInvalid) as exc:
        if isinstance(exc, InputError):
            raise
        raise InputError(f"{name}: {exc}") from exc
    if "location" not in table.column_names:
        raise _no_location(name, table.column_names)
    if columns is not None:
        table = table.select([c for c in table.column_names if c in columns])
    for lo in range(0, table.num_rows, batch_rows):
        yield table.slice(lo, batch_rows)


def _parquet_file(name: str) -> pq.ParquetFile:
    """Arrow's own reader on the file (a Python file object would make it keep every chunk
    it read alive as Python bytes: hundreds of MB over ten million rows), streaming: only
    the row group being read is held."""
    from pyarrow.fs import FSSpecHandler, PyFileSystem

    if "://" not in name and os.path.isfile(name):  # a local name is a name ("::" too)
        from pyarrow.fs import LocalFileSystem

        return pq.ParquetFile(os.path.abspath(name), filesystem=LocalFileSystem(),
                              pre_buffer=False, buffer_size=1 << 20)  # fmt: skip
    fs, path = fsspec.core.url_to_fs(name)
    if name.startswith("file://"):
        return pq.ParquetFile(path, pre_buffer=False, buffer_size=1 << 20)
    return pq.ParquetFile(path, filesystem=PyFileSystem(FSSpecHandler(fs)), pre_buffer=False,
                          buffer_size=1 << 20)  # fmt: skip


def _read_shard_parquet(tar_url: str, columns) -> pa.Table:
    parquet = tar_url[: -len(".tar")] + ".parquet"
    with fsspec.open(parquet, "rb") as f:
        if columns is None:
            return pq.read_table(f)
        present = [c for c in pq.read_schema(f).names if c in (*columns, "status")]
        f.seek(0)
        return pq.read_table(f, columns=present)


def column_at(item: Input, shards: np.ndarray, rows: np.ndarray, name: str,
              successes_only: bool = True) -> list:  # fmt: skip
    """The values of column ``name`` at the given rows of one input (None where it has no
    such column), reading the input again in batches: memory holds only the values asked
    for."""
    want = (shards.astype(np.int64) << 32) | rows.astype(np.int64)
    wanted = np.unique(want)
    found_keys, found_values = [], []
    for batch in iter_batches(item, (name,), successes_only):
        if name not in batch.column_names:
            return [None] * len(rows)
        keys = (batch.column("_shard").to_numpy().astype(np.int64) << 32) | batch.column(
            "_row").to_numpy()  # fmt: skip
        hit = np.isin(keys, wanted)
        if hit.any():
            found_keys.append(keys[hit])
            found_values.extend(batch.column(name).filter(pa.array(hit)).to_pylist())
    keys = np.concatenate(found_keys) if found_keys else np.zeros(0, np.int64)
    order = np.argsort(keys, kind="stable")
    at = order[np.searchsorted(keys[order], want)] if len(keys) else []
    return [found_values[i] for i in at]


def check_models(items: list[Input], why: str) -> dict:
    """The one model (and weights) of these datasets; raises :class:`InputError` naming two
    that differ. ``why``: what needs them to agree, for the message."""
    datasets = [i for i in items if i.kind == "dataset"]
    if not datasets:
        return {}
    first = datasets[0]
    for other in datasets[1:]:
        if not same_model(first.model(), other.model()):
            raise InputError(
                f"{first.name} holds embeddings of {_model_text(first.model())}, {other.name}"
                f" of {_model_text(other.model())}: {why} needs one model and weights."
                " Mix datasets of one model, or encode them again with one."
            )
    return first.model()


def same_model(a: dict, b: dict) -> bool:
    """One model and weights: the weights' digests agree where both datasets recorded one,
    else their names (a tag or a path)."""
    if a.get("model") != b.get("model") or a.get("embed_dim") != b.get("embed_dim"):
        return False
    if a.get("weights_sha256") and b.get("weights_sha256"):
        return a["weights_sha256"] == b["weights_sha256"]
    return a.get("pretrained") == b.get("pretrained")


def _model_text(model: dict) -> str:
    digest = model.get("weights_sha256")
    return (f"{model.get('model')} ({model.get('pretrained')}"
            f"{', weights ' + digest[:12] if digest else ''})")  # fmt: skip


def pooled_embeddings(item: Input, shards: np.ndarray, rows: np.ndarray,
                      progress=None) -> np.ndarray:  # fmt: skip
    """float16 ``(len(rows), embed_dim)``: the pooled embedding of each wanted row (given by
    shard index and position in its shard), reading each shard that has one once, in order.
    Memory: the result and one sample at a time."""
    from ..read import shard_samples

    dim = int(item.run.get("embed_dim") or 0)
    out = np.zeros((len(rows), dim), np.float16)
    order = np.lexsort((rows, shards))
    done = 0
    for shard in np.unique(shards):
        wanted = order[shards[order] == shard]
        where = dict(zip(rows[wanted].tolist(), wanted.tolist(), strict=True))
        for position, (_, embeddings, meta) in enumerate(shard_samples(item.shards[shard], True)):
            target = where.get(position)
            if target is None:
                continue
            if embeddings is None or meta.get("status") != SUCCESS:
                raise InputError(f"{item.shards[shard]}: row {position} changed since it was"
                                 " planned (its tar and parquet disagree)")  # fmt: skip
            if embeddings.shape[1] != dim:
                raise InputError(f"{item.shards[shard]}: a sample has {embeddings.shape[1]}"
                                 f" dimensions, run.json says {dim}")  # fmt: skip
            out[target] = pool(embeddings)
            done += 1
            if progress is not None:
                progress(1)
    if done != len(rows):
        raise InputError(f"{item.name}: {len(rows) - done} planned rows not found in its tars")
    return out


def iter_members(tar_url: str) -> Iterator[tuple[str, dict[str, bytes]]]:
    """``(key, {extension: bytes})`` of every sample of one of our tars, in order."""
    from ..plan.tars import iter_tar_samples

    yield from iter_tar_samples(tar_url)
