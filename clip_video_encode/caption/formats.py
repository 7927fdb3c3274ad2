"""Caption files as ``{id: [captions]}``: predictions and references for ``eval``.

- ``coco``: COCO-caption json, ``[{"image_id", "caption"}, ...]`` (predictions, or
  references with several entries per id), or an annotation file ``{"annotations": [...]}``;
- ``vatex``: VATEX's official json, ``[{"videoID", "enCap": [...]}, ...]``;
- ``pipe``: ``id|caption|caption...`` lines, as SpaceTimeGPT publishes VATEX (written by
  Python's csv module with ``|`` as delimiter, so a quoted field may hold a ``|``);
- ``table``: csv, tsv, parquet or jsonl with an id column and a caption column, such as the
  tables ``clip-video-caption`` writes (predictions: ``generated_caption``; references:
  ``captions`` when it holds lists, else ``caption``);
- ``dataset``: a ``clip-video-encode`` dataset's own captions (its shards' parquet files);
- ``json``: a plain ``{"id": "caption" or [captions]}`` object.

``auto`` tells them apart by content. Text that is not in the stated encoding (UTF-8 by
default) is an error naming where, never replaced: SpaceTimeGPT's ``vatex_test.csv`` is in
cp1252 and reads with ``--encoding cp1252``. Ids are compared as text.
"""

from __future__ import annotations

import csv
import io
import json
import os

import fsspec

FORMATS = ("auto", "coco", "vatex", "pipe", "table", "dataset", "json")
_TABLE_SUFFIXES = (".csv", ".tsv", ".parquet", ".jsonl", ".ndjson")
_HEADER_NAMES = {"id", "key", "caption", "captions", "generated_caption", "image_id",
                 "video_id", "videoid", "location"}  # fmt: skip


class FormatError(ValueError):
    """A caption file that cannot be read as asked; the message says where and why."""


def read_captions(path: str, role: str, fmt: str = "auto", encoding: str | None = None,
                  id_field: str | None = None, caption_field: str | None = None
                  ) -> dict[str, list[str]]:  # fmt: skip
    """``{id: [captions]}`` of a file (``role``: ``predictions`` or ``references``)."""
    if fmt not in FORMATS:
        raise FormatError(f"format must be one of {', '.join(FORMATS)}, got {fmt!r}")
    from .source import is_dataset

    if fmt == "dataset" or (fmt == "auto" and is_dataset(path)):
        return _dataset(path, role, id_field, caption_field)
    if _is_folder(path):
        raise FormatError(
            f"{path} is a folder, but not a clip-video-encode dataset (no run.json and"
            f" committed shards): give the {role} as a file (COCO or VATEX json, id|caption"
            " lines, a table) or such a dataset"
        )
    lower = path.split("?", 1)[0].lower().removesuffix(".gz")
    if fmt == "table" or (fmt == "auto" and lower.endswith((".parquet", ".jsonl", ".ndjson"))):
        return _table(path, role, encoding, id_field, caption_field)
    text = _text(path, encoding)
    if fmt == "auto":
        fmt = _sniff(lower, text, path)
    if fmt == "table":
        return _table(path, role, encoding, id_field, caption_field)
    if fmt == "pipe":
        return _pipe(text, path)
    try:
        data = json.loads(text)
    except ValueError as exc:
        raise FormatError(f"{path} is not JSON ({exc})") from exc
    return _json(data, fmt, path)


def _is_folder(path: str) -> bool:
    try:
        fs, inner = fsspec.core.url_to_fs(path)
        return fs.isdir(inner)
    except (OSError, ValueError):
        return False


def _text(path: str, encoding: str | None) -> str:
    try:
        with fsspec.open(path, "rb", compression="infer") as f:
            raw = f.read()
    except FileNotFoundError as exc:
        raise FileNotFoundError(f"no such file: {path}") from exc
    codec = encoding or "utf-8-sig"
    try:
        return raw.decode(codec)
    except UnicodeDecodeError as exc:
        line = raw.count(b"\n", 0, exc.start) + 1
        raise FormatError(
            f"{path}: line {line} is not {encoding or 'UTF-8'} text ({exc.reason} at byte"
            f" {exc.start}: {raw[max(0, exc.start - 20) : exc.start + 5]!r}); give the file's"
            " encoding with --encoding (e.g. cp1252)"
        ) from exc


def _sniff(lower: str, text: str, path: str) -> str:
    head = text.lstrip()[:1]
    if lower.endswith(".json") or head in ("[", "{"):
        return "json-any"
    first = text.split("\n", 1)[0]
    if lower.endswith((".csv", ".tsv")):
        names = {c.strip().lower() for c in first.replace("\t", ",").split(",")}
        if names & _HEADER_NAMES or "|" not in first:
            return "table"
    if "|" in first:
        return "pipe"
    raise FormatError(
        f"{path}: cannot tell its format (not JSON, no id|caption lines, not a table); name it"
        " with --pred-format / --refs-format"
    )


def _pipe(text: str, path: str) -> dict[str, list[str]]:
    out: dict[str, list[str]] = {}
    if text and not text.endswith(("\n", "\r")):  # csv ends a quote left open at the end
        text += "\n"  # of the data silently: a last line's open quote is then seen as others'
    reader = csv.reader(io.StringIO(text, newline=""), delimiter="|")
    number = 1  # the line a record starts on
    for fields in reader:
        line, number = number, reader.line_num + 1
        if any("\n" in f or "\r" in f for f in fields):  # no caption spans lines
            last = reader.line_num
            swallowed = f", so lines {line}-{last} would read as one caption" if last > line else ""
            raise FormatError(
                f"{path}: line {line} opens a quote that no later quote on the line closes"
                f"{swallowed}: close or remove"
                " the quote (a caption holding '|' or '\"' is quoted whole, its quotes doubled)"
            )
        if not fields or not "".join(fields).strip():
            continue
        if len(fields) < 2:
            raise FormatError(f"{path}: line {line} has no caption after its id ({fields[0]!r})")
        out.setdefault(fields[0].strip(), []).extend(fields[1:])
    return out


def _json(data, fmt: str, path: str) -> dict[str, list[str]]:
    if isinstance(data, dict) and isinstance(data.get("annotations"), list):
        data = data["annotations"]  # a COCO annotation file
    if isinstance(data, dict) and fmt in ("json", "json-any"):
        out = {}
        for key, value in data.items():
            captions = value if isinstance(value, list) else [value]
            out[str(key)] = [_caption(c, path, key) for c in captions]
        return out
    if not isinstance(data, list):
        raise FormatError(f"{path}: expected a JSON list of captions (COCO or VATEX)")
    out: dict[str, list[str]] = {}
    for n, entry in enumerate(data):
        if not isinstance(entry, dict):
            raise FormatError(f"{path}: entry {n} is not an object")
        if "videoID" in entry and fmt in ("vatex", "json-any"):
            captions = entry.get("enCap")
            if not isinstance(captions, list):
                raise FormatError(f"{path}: entry {n} ({entry['videoID']!r}) has no enCap list")
            key = str(entry["videoID"])
        elif "image_id" in entry and fmt in ("coco", "json-any"):
            captions, key = [entry.get("caption")], str(entry["image_id"])
        else:
            want = {"coco": "image_id and caption", "vatex": "videoID and enCap"}.get(
                fmt, "image_id and caption (COCO) or videoID and enCap (VATEX)"
            )
            raise FormatError(f"{path}: entry {n} has no {want}: {sorted(entry)[:6]}")
        out.setdefault(key, []).extend(_caption(c, path, key) for c in captions)
    return out


def _caption(value, path: str, key) -> str:
    if isinstance(value, str):
        return value
    if value is None:
        raise FormatError(f"{path}: id {key!r} has a null caption")
    raise FormatError(f"{path}: id {key!r} has a caption that is not text: {value!r}")


def _table(path, role, encoding, id_field, caption_field) -> dict[str, list[str]]:
    from video2numpy.table import read_table

    table = read_table(path, encoding)
    return _rows(table.to_pylist(), table.column_names, path, role, id_field, caption_field)


def _rows(rows, names, path, role, id_field, caption_field) -> dict[str, list[str]]:
    filled = {c for c in ("id", "image_id", "video_id", "key") if c in names
              and any(r.get(c) not in (None, "") for r in rows)}  # fmt: skip
    id_column = id_field or next((c for c in ("id", "image_id", "video_id", "key")
                                  if c in filled), None)  # fmt: skip
    if caption_field:
        column = caption_field
    elif role == "predictions":
        column = next((c for c in ("generated_caption", "caption") if c in names), None)
    else:
        column = next((c for c in ("captions", "caption") if c in names), None)
    flags = "refs-" if role == "references" else ""
    for what, name in (("id", id_column), ("caption", column)):
        if name is None or name not in names:
            raise FormatError(
                f"{path} has no {what} column{f' {name!r}' if name else ''}; its columns are:"
                f" {', '.join(names)} (name one with --{flags}id-field / --{flags}caption-field)"
            )
    out: dict[str, list[str]] = {}
    for row in rows:
        key, value = row.get(id_column), row.get(column)
        if key is None or (isinstance(key, float) and key != key):
            continue
        captions = value if isinstance(value, list) else [value]
        kept = [str(c) for c in captions if c is not None and not (isinstance(c, float) and c != c)]
        entry = out.setdefault(str(key), [])
        entry.extend(kept)
    return {k: v for k, v in out.items() if v or role == "references"}


def _dataset(path, role, id_field, caption_field) -> dict[str, list[str]]:
    import pyarrow.parquet as pq

    from ..destination.folder import committed_shards

    fs, root = fsspec.core.url_to_fs(path)
    stats, _ = committed_shards(fs, root.rstrip("/"))
    rows, names = [], set()
    for s in stats:
        with fs.open(os.path.join(root.rstrip("/"), f"{s['shard']}.parquet"), "rb") as f:
            table = pq.read_table(f)
        names |= set(table.column_names)
        rows.extend(table.to_pylist())
    if not rows:
        raise FormatError(f"{path}: the dataset has no committed rows")
    return _rows(rows, sorted(names), path, role, id_field, caption_field)
