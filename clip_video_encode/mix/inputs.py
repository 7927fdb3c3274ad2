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
from collections.abc import Iterator
from dataclasses import dataclass, field

import fsspec
import numpy as np
import pyarrow as pa
import pyarrow.compute as pc
import pyarrow.parquet as pq

from video2numpy.status import SUCCESS
from video2numpy.table import is_table, read_table, text_columns

from ..read import _iter_tar, dataset_identity
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

    @property
    def url(self) -> str:
        return self.name.rstrip("/") or self.name

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
    shards, identity = dataset_identity(url)
    return Input(name, "dataset", identity, run, shards)


def _file_sha256(name: str) -> str:
    h = hashlib.sha256()
    with fsspec.open(name, "rb") as f:
        for block in iter(lambda: f.read(1 << 20), b""):
            h.update(block)
    return h.hexdigest()


def read_rows(item: Input, columns=PLAN_COLUMNS, successes_only: bool = True) -> pa.Table:
    """The input's rows, with the ``columns`` it has (others absent), plus ``_shard`` (a
    dataset's shard index; 0 for a table) and ``_row`` (the row's position in its shard or
    table). A dataset gives only rows that succeeded unless ``successes_only`` is False."""
    if item.kind == "table":
        table = _typed(_read_table(item.name, columns))
        table = table.append_column("_shard", pa.array(np.zeros(table.num_rows, np.int32)))
        return table.append_column("_row", pa.array(np.arange(table.num_rows, dtype=np.int64)))
    parts, failed = [], 0
    for index, url in enumerate(item.shards):
        table = _typed(_read_shard_parquet(url, columns))
        table = table.append_column("_shard", pa.array(np.full(table.num_rows, index, np.int32)))
        table = table.append_column("_row", pa.array(np.arange(table.num_rows, dtype=np.int64)))
        if successes_only:
            before = table.num_rows
            table = table.filter(pc.equal(table.column("status"), SUCCESS).fill_null(False))
            failed += before - table.num_rows
        parts.append(table)
    if successes_only:
        item.failed = failed
    if not parts:  # a dataset with no committed shard: no rows, the usual columns
        empty = pa.table({c: pa.array([], pa.string()) for c in (columns or PLAN_COLUMNS)})
        empty = _typed(empty).append_column("_shard", pa.array([], pa.int32()))
        return empty.append_column("_row", pa.array([], pa.int64()))
    return pa.concat_tables(parts, promote_options="permissive")


def _typed(table: pa.Table) -> pa.Table:
    """The planning columns with one type each whatever the input typed them (an ``id`` of
    numbers, a ``start`` of text), so inputs concatenate: text, or float64 (null: NaN)."""
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
        table = table.set_column(i, name, typed)
    return table


def _read_table(name: str, columns) -> pa.Table:
    try:
        if name.lower().removesuffix(".gz").endswith(".parquet") and columns is not None:
            with fsspec.open(name, "rb", compression="infer") as f:
                present = [c for c in pq.read_schema(f).names if c in columns]
                f.seek(0)
                table = pq.read_table(f, columns=present)
            return text_columns(table, name)
        table = read_table(name)
    except FileNotFoundError as exc:
        raise InputError(f"{name}: no such table") from exc
    except ValueError as exc:
        raise InputError(str(exc)) from exc
    if "location" not in table.column_names:
        raise InputError(f"{name} has no location column (its columns: "
                         f"{', '.join(table.column_names)}); mix reads input tables as"
                         " video-convert writes them")  # fmt: skip
    if columns is None:
        return table
    return table.select([c for c in table.column_names if c in columns])


def _read_shard_parquet(tar_url: str, columns) -> pa.Table:
    parquet = tar_url[: -len(".tar")] + ".parquet"
    with fsspec.open(parquet, "rb") as f:
        if columns is None:
            return pq.read_table(f)
        present = [c for c in pq.read_schema(f).names if c in (*columns, "status")]
        f.seek(0)
        return pq.read_table(f, columns=present)


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
    dim = int(item.run.get("embed_dim") or 0)
    out = np.zeros((len(rows), dim), np.float16)
    order = np.lexsort((rows, shards))
    done = 0
    for shard in np.unique(shards):
        wanted = order[shards[order] == shard]
        where = dict(zip(rows[wanted].tolist(), wanted.tolist(), strict=True))
        for position, (_, embeddings, meta) in enumerate(_iter_tar(item.shards[shard], True)):
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
    from ..tars import iter_tar_samples

    yield from iter_tar_samples(tar_url)
