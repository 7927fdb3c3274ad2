"""Writing the input table: all at once (:func:`to_table`) or streamed in batches
(:func:`write_rows`), so that a dataset of millions of rows converts in flat memory.

Columns: the fixed ones of DESIGN.md section 2 first, then the dataset's own, in first-seen
order. The schema is fixed by the first batch (and the types a converter declares), so a
converter gives every row the same fields.
"""

from __future__ import annotations

import contextlib
import json
from collections.abc import Iterable, Iterator

import pyarrow as pa

from .core import COLUMNS

BATCH_ROWS = 20_000
BASE_TYPES = {
    "id": pa.string(),
    "location": pa.string(),
    "caption": pa.string(),
    "start": pa.float64(),
    "end": pa.float64(),
    "split": pa.string(),
}


def schema_of(rows: list[dict], types: dict[str, pa.DataType] | None = None) -> pa.Schema:
    """The columns of ``rows``: declared types, else inferred (a column with no value at all
    in ``rows`` is text)."""
    names = list(COLUMNS)
    for row in rows:
        for name in row:
            if name not in names:
                names.append(name)
    declared = {**BASE_TYPES, **(types or {})}
    fields = []
    for name in names:
        kind = declared.get(name)
        if kind is None:
            kind = pa.array([row.get(name) for row in rows]).type
            kind = pa.string() if pa.types.is_null(kind) else kind
        fields.append(pa.field(name, kind))
    return pa.schema(fields)


def batch_table(rows: list[dict], schema: pa.Schema, first_rows: int) -> pa.Table:
    extra = {k for row in rows for k in row} - set(schema.names)
    if extra:
        raise ValueError(
            f"column {', '.join(sorted(extra))} first appears after the first"
            f" {first_rows} rows; the converter must give every row its fields"
        )
    try:
        return pa.Table.from_pylist(rows, schema=schema)
    except (pa.ArrowInvalid, pa.ArrowTypeError) as exc:
        raise ValueError(
            f"a value does not fit its column's type ({exc}); the first"
            f" {first_rows} rows set the types"
        ) from exc


def to_table(rows: list[dict], types: dict[str, pa.DataType] | None = None) -> pa.Table:
    """One table for all rows: the fixed columns first, then extras; missing values null."""
    return batch_table(rows, schema_of(rows, types), len(rows))


def batches(rows: Iterable[dict], size: int = BATCH_ROWS) -> Iterator[list[dict]]:
    batch: list[dict] = []
    for row in rows:
        batch.append(row)
        if len(batch) >= size:
            yield batch
            batch = []
    if batch:
        yield batch


def write_rows(
    rows: Iterable[dict],
    out: str,
    types: dict[str, pa.DataType] | None = None,
    batch_rows: int = BATCH_ROWS,
) -> int:
    """Stream ``rows`` into ``out``: parquet (a row group per batch), jsonl, or csv/tsv (list
    columns as JSON text). Returns the number of rows written."""
    import fsspec

    name = out.lower()
    if not name.endswith((".parquet", ".jsonl", ".ndjson", ".csv", ".tsv")):
        raise ValueError(f"--out {out}: name a .parquet, .jsonl, .csv or .tsv file")
    fs, path = fsspec.core.url_to_fs(out)
    partial = f"{path}.partial"  # the table appears under its name only once complete
    parent = fs._parent(path)
    if parent:
        fs.makedirs(parent, exist_ok=True)
    try:
        with fs.open(partial, "wb") as f:
            written = _write(rows, f, name, types, batch_rows)
        fs.mv(partial, path)
    except BaseException:
        with contextlib.suppress(Exception):
            fs.rm(partial)
        raise
    return written


def _write(rows: Iterable[dict], f, name: str, types, batch_rows: int) -> int:
    written, schema, writer, first = 0, None, None, 0
    try:
        for batch in batches(rows, batch_rows):
            if schema is None:
                schema, first = schema_of(batch, types), len(batch)
            table = batch_table(batch, schema, first)
            if name.endswith(".parquet"):
                import pyarrow.parquet as pq

                writer = writer or pq.ParquetWriter(f, schema)
                writer.write_table(table)
            elif name.endswith((".jsonl", ".ndjson")):
                for row in table.to_pylist():
                    f.write((json.dumps(row, ensure_ascii=False) + "\n").encode("utf-8"))
            else:
                import pyarrow.csv as pc

                table = _lists_as_json(table)
                if writer is None:
                    options = pc.WriteOptions(delimiter="\t" if name.endswith(".tsv") else ",")
                    writer = pc.CSVWriter(f, table.schema, write_options=options)
                writer.write_table(table)
            written += len(batch)
    finally:
        if writer is not None:
            writer.close()
    if schema is None and name.endswith(".parquet"):  # no rows: an empty table still
        import pyarrow.parquet as pq

        pq.write_table(to_table([]), f)
    return written


def _lists_as_json(table: pa.Table) -> pa.Table:
    for i, column in enumerate(table.schema):
        if pa.types.is_list(column.type) or pa.types.is_struct(column.type):
            text = [
                None if v is None else json.dumps(v, ensure_ascii=False)
                for v in table.column(i).to_pylist()
            ]
            table = table.set_column(i, column.name, pa.array(text, pa.string()))
    return table


def write_table(table: pa.Table, out: str) -> None:
    """A whole table to ``out`` (parquet, jsonl, csv or tsv)."""
    write_rows(table.to_pylist(), out, {f.name: f.type for f in table.schema})
