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

import numpy as np
import pyarrow as pa
import pyarrow.parquet as pq

from video2numpy.jsonsafe import dumps

from ..commit.writer import PARQUET_COLUMNS
from .fields import PROVENANCE, merge_types
from .inputs import Input, iter_batches
from .plan import Plan

TABLE = "mix.parquet"
FIRST = ("id", "location", "caption", "start", "end", "split")
# A dataset's record fields: what encoding found, not what to encode.
RECORD = tuple(c for c in PARQUET_COLUMNS if c not in FIRST) + ("key",)


def _schema(plan: Plan) -> pa.Schema:
    """The table's columns: FIRST, then the inputs' own in first-seen order (types merged),
    then the provenance."""
    types: dict[str, pa.DataType] = {}
    order: list[str] = []
    for item in plan.inputs:
        for batch in iter_batches(item, columns=None):
            for f in batch.schema:
                if f.name in _dropped(item):
                    continue
                if f.name not in order:
                    order.append(f.name)
                if pa.types.is_null(f.type):
                    continue
                types[f.name] = merge_types(types[f.name], f.type) if f.name in types else f.type
            break  # the first batch has the input's schema
    names = [c for c in FIRST if c in order or c in ("id", "location")]
    names += [c for c in order if c not in names]
    fields = [pa.field(n, types.get(n, pa.string())) for n in names]
    return pa.schema(fields + [pa.field(n, pa.string()) for n in PROVENANCE])


def _dropped(item: Input) -> set[str]:
    drop = {"_shard", "_row", *PROVENANCE}
    return drop | set(RECORD) if item.kind == "dataset" else drop


def write_table(fs, dest: str, plan: Plan) -> tuple[str, int]:
    """``DEST/mix.parquet``: the kept rows of every input, in input order, streamed batch by
    batch (written aside, then moved: whole or not at all). Returns its path and rows."""
    schema = _schema(plan)
    path = f"{dest}/{TABLE}"
    kept = plan.kept()
    mix = plan.mix
    written = 0
    with fs.open(f"{path}.partial", "wb") as f, pq.ParquetWriter(f, schema) as writer:
        for index, item in enumerate(plan.inputs):
            mine = kept[mix.group[kept] == index]
            if len(mine) == 0:
                continue
            wanted = (mix.shard[mine].astype(np.int64) << 32) | mix.row[mine]
            order = np.argsort(wanted)
            wanted, codes = wanted[order], mix.code[mine][order]
            for batch in iter_batches(item, columns=None):
                keys = (batch.column("_shard").to_numpy().astype(np.int64) << 32) | (
                    batch.column("_row").to_numpy())  # fmt: skip
                hit = np.isin(keys, wanted)
                if not hit.any():
                    continue
                picked = batch.filter(pa.array(hit))
                at = np.searchsorted(wanted, keys[hit])
                if item.kind == "dataset":
                    source_key = picked.column("key").combine_chunks()
                else:
                    source_key = pa.array(picked.column("_row").to_numpy().astype(str))
                extra = {
                    "source_dataset": pa.array([item.name] * picked.num_rows, pa.string()),
                    "source_key": source_key,
                    "source_id": plan.source_of(codes[at]),
                }
                columns = []
                for field in schema:
                    if field.name in extra:
                        columns.append(extra[field.name])
                    elif field.name in picked.column_names and field.name not in _dropped(item):
                        columns.append(_as(picked.column(field.name).combine_chunks(),
                                           field.type))  # fmt: skip
                    else:
                        columns.append(pa.nulls(picked.num_rows, field.type))
                writer.write_table(pa.Table.from_arrays(columns, schema=schema))
                written += picked.num_rows
    fs.mv(f"{path}.partial", path)
    return path, written


def _as(column: pa.Array, kind: pa.DataType) -> pa.Array:
    if column.type == kind:
        return column
    if pa.types.is_null(column.type):
        return pa.nulls(len(column), kind)
    if pa.types.is_string(kind) and not pa.types.is_string(column.type):
        return pa.array([None if v is None else (v if isinstance(v, str) else dumps(v))
                         for v in column.to_pylist()], pa.string())  # fmt: skip
    return column.cast(kind)
