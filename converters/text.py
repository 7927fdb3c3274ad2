"""Reading annotation files: whole text, JSON, JSON Lines, csv and plain lines, local or
fsspec URLs, compressed or not; large files are streamed. Errors name the file and line."""

from __future__ import annotations

import csv
import io
import json
from collections.abc import Iterable, Iterator

from .core import ConvertError


def read_text(path: str, encoding: str = "utf-8") -> str:
    """A whole annotation file as text (local or fsspec URL); a clear error when the bytes
    are not in ``encoding``."""
    import fsspec

    with fsspec.open(path, "rb", compression="infer") as f:
        data = f.read()
    try:
        text = data.decode(encoding)
    except UnicodeDecodeError as exc:
        line = data[: exc.start].count(b"\n") + 1
        raise ConvertError(
            path,
            f"not valid {encoding} text (byte {exc.start}); pass --encoding with the file's"
            " encoding, e.g. --encoding latin-1",
            line,
        ) from exc
    return text.removeprefix("\ufeff")


def read_json(path: str, encoding: str = "utf-8"):
    try:
        return json.loads(read_text(path, encoding))
    except json.JSONDecodeError as exc:
        raise ConvertError(path, f"not JSON: {exc.msg}", exc.lineno) from exc


def read_lines(path: str, encoding: str = "utf-8") -> Iterator[str]:
    """A text file's lines (local or fsspec URL, compressed or not), streamed: a file of
    millions of rows is never held whole. A line that is not valid ``encoding`` fails with
    its line number."""
    import fsspec

    with fsspec.open(path, "rb", compression="infer") as f:
        for number, raw in enumerate(f, 1):
            try:
                line = raw.decode(encoding)
            except UnicodeDecodeError as exc:
                raise ConvertError(
                    path,
                    f"not valid {encoding} text (byte {exc.start} of the line); pass --encoding"
                    " with the file's encoding, e.g. --encoding latin-1",
                    number,
                ) from exc
            yield line.removeprefix("\ufeff") if number == 1 else line


def read_jsonl(path: str, encoding: str = "utf-8") -> Iterator[tuple[int, object]]:
    """``(line number, value)`` for each non-blank line of a JSON Lines file, streamed."""
    for number, line in enumerate(read_lines(path, encoding), 1):
        if not line.strip():
            continue
        try:
            yield number, json.loads(line)
        except json.JSONDecodeError as exc:
            raise ConvertError(path, f"not a JSON line: {exc.msg}", number) from exc


def iter_json_object(path: str, encoding: str = "utf-8") -> Iterator[tuple[str, object]]:
    """The top-level ``key, value`` pairs of a JSON object, parsed incrementally (ijson), so
    that a file of gigabytes (HowTo100M's ``caption.json``) is never held whole."""
    import fsspec
    import ijson

    with fsspec.open(path, "rb", compression="infer") as f:
        source = f if encoding.lower().replace("-", "") == "utf8" else io.TextIOWrapper(f, encoding)
        try:
            yield from ijson.kvitems(source, "", use_float=True)
        except ijson.JSONError as exc:
            raise ConvertError(path, f"not JSON: {exc}") from exc
        except UnicodeDecodeError as exc:
            raise ConvertError(path, f"not valid {encoding} text; pass --encoding") from exc


def read_csv(
    path: str, required: Iterable[str], encoding: str = "utf-8"
) -> Iterator[tuple[int, dict]]:
    """Rows of a csv by header name, with their line numbers, streamed; quoted fields may
    hold commas and newlines. Fails on a missing column, naming the ones the file has."""
    reader = csv.DictReader(read_lines(path, encoding))
    header = [h.strip() for h in (reader.fieldnames or [])]
    reader.fieldnames = header
    missing = [c for c in required if c not in header]
    if missing:
        raise ConvertError(
            path,
            f"no column {', '.join(missing)} in the header (it has: {', '.join(header) or 'none'})",
            1,
        )
    line = reader.line_num
    for row in reader:
        if None in row:  # more fields than the header names
            raise ConvertError(
                path, f"{len(header) + len(row[None])} fields, header has {len(header)}", line + 1
            )
        yield line + 1, row
        line = reader.line_num
