"""Input tables: csv, tsv, parquet, jsonl or txt, local or any fsspec URL, read with pyarrow."""

from __future__ import annotations

import os

import pyarrow as pa

TABLE_SUFFIXES = (".csv", ".tsv", ".parquet", ".jsonl", ".ndjson", ".txt")


def is_table(src: str) -> bool:
    """Whether ``src`` names a table of videos rather than one video."""
    path = src.split("?", 1)[0].lower()
    return path.endswith(TABLE_SUFFIXES) or path.endswith(tuple(s + ".gz" for s in TABLE_SUFFIXES))


def read_table(src: str) -> pa.Table:
    """Read a table of videos. A ``.txt`` file is one location per line (``#`` comments)."""
    import fsspec

    name = src.lower().removesuffix(".gz")
    compression = "infer"
    try:
        with fsspec.open(src, "rb", compression=compression) as f:
            if name.endswith(".parquet"):
                import pyarrow.parquet as pq

                return pq.read_table(f)
            if name.endswith(".txt"):
                lines = [line.strip() for line in f.read().decode("utf-8").splitlines()]
                rows = [line for line in lines if line and not line.startswith("#")]
                return pa.table({"location": pa.array(rows, pa.string())})
            if name.endswith((".jsonl", ".ndjson")):
                import pyarrow.json as pj

                return pj.read_json(f)
            import pyarrow.csv as pc

            delimiter = "\t" if name.endswith(".tsv") else ","
            return pc.read_csv(
                f,
                parse_options=pc.ParseOptions(delimiter=delimiter, newlines_in_values=True),
                convert_options=pc.ConvertOptions(strings_can_be_null=False),
            )
    except FileNotFoundError as exc:
        raise FileNotFoundError(f"input table not found: {src}") from exc
    except (pa.ArrowInvalid, UnicodeDecodeError) as exc:
        raise ValueError(
            f"cannot read {src} as a {os.path.splitext(name)[1]} table: {exc}"
        ) from exc


def require_columns(table: pa.Table, columns: dict[str, str | None], src: str) -> None:
    """Fail early, naming the columns the table does have, when an asked-for one is missing."""
    for option, column in columns.items():
        if column is not None and column not in table.column_names:
            have = ", ".join(table.column_names)
            raise ValueError(
                f"{src} has no column {column!r} (for {option}); its columns are: {have}"
            )
