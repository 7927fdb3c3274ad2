"""Input tables: csv, tsv, parquet, jsonl or txt, local or any fsspec URL, read with pyarrow."""

from __future__ import annotations

import datetime
import decimal
import math
import os
import re

import pyarrow as pa

from .encodings import check_encoding

TABLE_SUFFIXES = (".csv", ".tsv", ".parquet", ".jsonl", ".ndjson", ".txt")


def is_table(src: str) -> bool:
    """Whether ``src`` names a table of videos rather than one video."""
    path = src.split("?", 1)[0].lower()
    return path.endswith(TABLE_SUFFIXES) or path.endswith(tuple(s + ".gz" for s in TABLE_SUFFIXES))


def read_table(src: str, encoding: str | None = None) -> pa.Table:
    """Read a table of videos. A ``.txt`` file is one location per line (``#`` comments).

    Text files are read as ``encoding`` (UTF-8 by default). Text that does not decode is an
    error naming the row and column, never replacement characters: the text would be lost
    without a word."""
    check_encoding(encoding)
    table = _read(src, encoding)
    return text_columns(table, src, encoding)


def text_columns(table: pa.Table, src: str, encoding: str | None = None) -> pa.Table:
    """Binary columns (what readers give for undecodable text, or parquet's bytes) as text
    in ``encoding`` (UTF-8 by default); raises ValueError at the first value that is not."""
    codec = encoding or "utf-8"
    for i, field in enumerate(table.schema):
        if not (pa.types.is_binary(field.type) or pa.types.is_large_binary(field.type)):
            continue
        values = table.column(i).to_pylist()
        texts = []
        for row, value in enumerate(values):
            try:
                texts.append(None if value is None else value.decode(codec))
            except UnicodeDecodeError as exc:
                hint = "another --encoding" if encoding else "--encoding (e.g. --encoding cp1252)"
                raise ValueError(
                    f"{src}: row {row + 1}, column {field.name!r} is not {codec} text"
                    f" ({exc.reason} at byte {exc.start}: {value[:40]!r}); give the table's"
                    f" encoding with {hint}"
                ) from exc
        table = table.set_column(i, pa.field(field.name, pa.string()), pa.array(texts, pa.string()))
    return table


def open_file(src: str, mode: str = "rb", compression: str | None = None):
    """fsspec's ``open``, except that an existing local file is that file: fsspec reads
    ``::`` as a chain of URLs (``va::tex.parquet`` would be protocol ``va``)."""
    import os

    import fsspec

    if "://" not in src and os.path.isfile(src):
        return fsspec.filesystem("file").open(src, mode, compression=compression)
    return fsspec.open(src, mode, compression=compression)


def _read(src: str, encoding: str | None) -> pa.Table:
    import io

    name = src.lower().removesuffix(".gz")
    compression = "infer"
    try:
        with open_file(src, "rb", compression=compression) as f:
            if name.endswith(".parquet"):
                import pyarrow.parquet as pq

                return pq.read_table(f)
            if name.endswith(".txt"):
                try:
                    text = f.read().decode(encoding or "utf-8")
                except UnicodeDecodeError as exc:
                    raise ValueError(
                        f"{src}: byte {exc.start} is not {encoding or 'utf-8'} text"
                        f" ({exc.reason}); give the file's encoding with --encoding"
                    ) from exc
                lines = [line.strip() for line in text.splitlines()]
                rows = [line for line in lines if line and not line.startswith("#")]
                return pa.table({"location": pa.array(rows, pa.string())})
            if name.endswith((".jsonl", ".ndjson")):
                import pyarrow.json as pj

                if encoding and encoding.lower().replace("-", "") not in ("utf8", "ascii"):
                    return pj.read_json(io.BytesIO(f.read().decode(encoding).encode()))
                return pj.read_json(f)
            import pyarrow.csv as pc

            delimiter = "\t" if name.endswith(".tsv") else ","
            return pc.read_csv(
                f,
                read_options=pc.ReadOptions(encoding=encoding or "utf8"),
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


# The time forms a start/end cell may take besides a number of seconds: "12.5s", and
# "[H:]MM:SS[.fff]" (a video player's and ffmpeg's form).
_SECONDS = re.compile(r"(\d+(?:\.\d*)?|\.\d+)\s*s")
_CLOCK = re.compile(r"(?:(\d+):)?(\d+):(\d+(?:\.\d*)?)")
TIME_FORMS = "seconds (12.5), 12.5s, MM:SS or HH:MM:SS(.fff)"


def parse_seconds(value) -> float | None:
    """A start/end cell in seconds: a number, ``12.5s``, ``MM:SS(.fff)`` or
    ``HH:MM:SS(.fff)`` (minutes and seconds below 60 after a larger unit), a duration or a
    time of day (parquet's types). Empty, null and NaN cells are no bound (None); what is
    a number stays one, negative or infinite (the sampler judges a window, one row at a
    time). Raises ValueError for anything else: guessing would cut the wrong frames."""
    if value is None:
        return None
    if isinstance(value, (int, float, decimal.Decimal)) and not isinstance(value, bool):
        number = float(value)
        return None if math.isnan(number) else number
    if isinstance(value, datetime.timedelta):
        return value.total_seconds()
    if isinstance(value, datetime.time):
        return value.hour * 3600 + value.minute * 60 + value.second + value.microsecond / 1e6
    if isinstance(value, str):
        text = value.strip()
        if not text:
            return None
        try:
            return parse_seconds(float(text))
        except ValueError:
            pass
        if match := _SECONDS.fullmatch(text):
            return float(match[1])
        if match := _CLOCK.fullmatch(text):
            hours, minutes, seconds = match[1], int(match[2]), float(match[3])
            if seconds < 60 and (hours is None or minutes < 60):
                return int(hours or 0) * 3600 + minutes * 60 + seconds
    raise ValueError(f"{value!r} is not a time")


def check_seconds(table: pa.Table, columns: dict[str, str | None]) -> None:
    """Every cell of the window columns (``{"start": column, "end": column}``) that
    :func:`parse_seconds` reads; raises ValueError naming the first other cell's row,
    column and value. Numeric columns pass as they are, without reading a row."""
    for column in columns.values():
        if column is None or column not in table.column_names:
            continue
        kind = table.schema.field(column).type
        if pa.types.is_integer(kind) or pa.types.is_floating(kind) or pa.types.is_null(kind):
            continue
        values = table.column(column)
        for lo in range(0, len(values), 65536):  # in slices: flat memory for any table
            for row, value in enumerate(values.slice(lo, 65536).to_pylist(), lo):
                try:
                    parse_seconds(value)
                except ValueError:
                    raise ValueError(
                        f"row {row + 1}, column {column!r}: {value!r} is not a time; write"
                        f" {TIME_FORMS}, or leave the cell empty for no bound"
                    ) from None
