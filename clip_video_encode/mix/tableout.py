"""``--table-only``: the mix as an input table, before anything is downloaded or encoded.

``DEST/mix.parquet`` holds the kept rows of every input with the input table's columns
(DESIGN.md section 2: ``id``, ``location``, ``caption``, ``start``, ``end``, ``split``, then the
datasets' own columns in first-seen order) and the provenance (``source_dataset``,
``source_key``: the row's position in its table or its key in its dataset, ``source_id``).
``clip-video-encode DEST/mix.parquet --dest ...`` encodes it; duplicates and evaluation videos
are never fetched. A dataset input contributes its rows' input columns (its record fields,
``status``, ``n_frames`` and the like, are dropped).

Columns that two inputs type differently get one type: float64 for numbers of two kinds, else
text (JSON text for values that are not text).
"""

from __future__ import annotations

import io

import numpy as np
import pyarrow as pa
import pyarrow.compute as pc
import pyarrow.parquet as pq

from video2numpy.jsonsafe import dumps

from ..writer import PARQUET_COLUMNS
from .fields import PROVENANCE, merge_types
from .inputs import Input, read_rows
from .plan import Plan

TABLE = "mix.parquet"
FIRST = ("id", "location", "caption", "start", "end", "split")
# A dataset's record fields: what encoding found, not what to encode.
RECORD = tuple(c for c in PARQUET_COLUMNS if c not in FIRST) + ("key",)


def mixed_table(plan: Plan) -> pa.Table:
    """The kept rows of every input as one table, in input order."""
    kept = plan.kept()
    group = plan.input_of()
    parts: list[pa.Table] = []
    for index, item in enumerate(plan.inputs):
        mine = kept[group[kept] == index]
        if len(mine) == 0:
            continue
        parts.append(_rows_of(plan, item, mine))
    return _concat(parts)


def _rows_of(plan: Plan, item: Input, mine: np.ndarray) -> pa.Table:
    """The full rows of one input at the plan's rows ``mine``, with provenance."""
    full = read_rows(item, columns=None, successes_only=False)
    table = plan.mix.table
    shard = table.column("_shard").combine_chunks().take(pa.array(mine)).to_numpy()
    row = table.column("_row").combine_chunks().take(pa.array(mine)).to_numpy()
    if item.kind == "table":
        at = row
    else:  # a shard's rows follow the shards before it
        sizes = np.bincount(full.column("_shard").to_numpy(), minlength=len(item.shards))
        at = np.concatenate([[0], np.cumsum(sizes)])[shard] + row
    picked = full.take(pa.array(at, pa.int64()))
    drop = {"_shard", "_row", *PROVENANCE}
    if item.kind == "dataset":
        drop |= set(RECORD)
        key = picked.column("key").combine_chunks()
    else:
        key = pc.cast(pa.array(row), pa.string())
    picked = picked.drop_columns([c for c in picked.column_names if c in drop])
    return picked.append_column("source_dataset", pa.array([item.name] * len(mine), pa.string())) \
        .append_column("source_key", key) \
        .append_column("source_id", plan.mix.source.take(pa.array(mine)))  # fmt: skip


def _concat(parts: list[pa.Table]) -> pa.Table:
    """One schema: FIRST columns, then others in first-seen order, provenance last."""
    names: list[str] = [c for c in FIRST if any(c in p.column_names for p in parts)]
    for part in parts:
        names += [c for c in part.column_names if c not in names and c not in PROVENANCE]
    names += list(PROVENANCE)
    types: dict[str, pa.DataType] = {}
    for part in parts:
        for f in part.schema:
            kind = f.type
            if pa.types.is_null(kind):
                continue
            types[f.name] = merge_types(types[f.name], kind) if f.name in types else kind
    columns = {}
    for name in names:
        kind = types.get(name, pa.string())
        pieces = []
        for part in parts:
            if name not in part.column_names:
                pieces.append(pa.nulls(part.num_rows, kind))
                continue
            pieces.append(_as(part.column(name).combine_chunks(), kind))
        columns[name] = pa.concat_arrays(pieces) if pieces else pa.array([], kind)
    if not parts:
        return pa.table({n: pa.array([], pa.string()) for n in (*FIRST, *PROVENANCE)})
    return pa.table(columns)


def _as(column: pa.Array, kind: pa.DataType) -> pa.Array:
    if column.type == kind:
        return column
    if pa.types.is_null(column.type):
        return pa.nulls(len(column), kind)
    if pa.types.is_string(kind) and not pa.types.is_string(column.type):
        return pa.array([None if v is None else (v if isinstance(v, str) else dumps(v))
                         for v in column.to_pylist()], pa.string())  # fmt: skip
    return column.cast(kind)


def write_table(fs, dest: str, table: pa.Table) -> str:
    """``DEST/mix.parquet``, whole or not at all."""
    from .report import _put

    buf = io.BytesIO()
    pq.write_table(table, buf)
    path = f"{dest}/{TABLE}"
    _put(fs, path, buf.getvalue())
    return path
