"""Reading annotation files: whole text, JSON, JSON Lines, csv and plain lines, local or
fsspec URLs, compressed or not; large files are streamed. Errors name the file and line."""

from __future__ import annotations

import codecs
import csv
import json
import re
from collections.abc import Iterable, Iterator

from .core import ConvertError

CHUNK = 1 << 20  # bytes decoded at a time when a file is streamed
FIELD_LIMIT = 1 << 28  # characters in one csv field
_BOMS = (  # longest first: the UTF-32-LE mark begins with the UTF-16-LE one
    (codecs.BOM_UTF32_LE, "utf-32"),
    (codecs.BOM_UTF32_BE, "utf-32"),
    (codecs.BOM_UTF8, "utf-8-sig"),
    (codecs.BOM_UTF16_LE, "utf-16"),
    (codecs.BOM_UTF16_BE, "utf-16"),
)


def codec_for(encoding: str, head: bytes) -> str:
    """The codec that reads a file in ``encoding`` whose first bytes are ``head``.

    ``utf-16`` and ``utf-32`` without a byte-order mark are read in the byte order the first
    bytes show (Python's codecs would assume this machine's, and a big-endian file would
    decode to other, valid, characters): annotation text is mostly ASCII, whose zero bytes
    come first in each code unit when big-endian. Raises LookupError for an unknown name."""
    name = codecs.lookup(encoding).name
    b"".decode(name)  # LookupError for codecs that are not text encodings (base64, ...)
    width = {"utf-16": 2, "utf-32": 4}.get(name)
    marks = {2: (codecs.BOM_UTF16_LE, codecs.BOM_UTF16_BE),
             4: (codecs.BOM_UTF32_LE, codecs.BOM_UTF32_BE)}  # fmt: skip
    if width is None or head.startswith(marks[width]):
        return name
    units = [head[i : i + width] for i in range(0, len(head) - width + 1, width)]
    big = sum(u[0] == 0 for u in units)
    little = sum(u[-1] == 0 for u in units)
    return f"{name}-{'be' if big > little else 'le'}"


def _decode_error(path: str, encoding: str, head: bytes, offset: int, line: int) -> ConvertError:
    """What to say when the bytes are not ``encoding``: the line and byte, and the encoding
    to pass when the file's byte-order mark names another one."""
    hint = "pass --encoding with the file's encoding, e.g. --encoding latin-1"
    marked = next((name for bom, name in _BOMS if head.startswith(bom)), None)
    if marked and codecs.lookup(marked).name != codecs.lookup(encoding).name.split("-")[0]:
        hint = f"the file starts with a {marked} byte-order mark: pass --encoding {marked}"
    return ConvertError(path, f"not valid {encoding} text (byte {offset}); {hint}", line)


def read_text(path: str, encoding: str = "utf-8") -> str:
    """A whole annotation file as text (local or fsspec URL); a clear error, with its line,
    when the bytes are not in ``encoding``."""
    import fsspec

    with fsspec.open(path, "rb", compression="infer") as f:
        data = f.read()
    codec = codec_for(encoding, data[:CHUNK])
    try:
        text = data.decode(codec)
    except UnicodeDecodeError as exc:
        line = data[: exc.start].decode(codec, "replace").count("\n") + 1
        raise _decode_error(path, encoding, data[:4], exc.start, line) from exc
    except UnicodeError as exc:  # a codec's own complaint, without a position
        raise ConvertError(path, f"not valid {encoding} text ({exc}); pass --encoding") from exc
    return text.removeprefix("\ufeff")


def decoded_chunks(f, path: str, encoding: str) -> Iterator[str]:
    """The text of binary file ``f``, decoded a chunk at a time (never held whole). Bytes are
    decoded before anything splits them: in UTF-16 or UTF-32 a ``0x0A`` byte is often part of
    another character, and a newline is two or four bytes. A leading byte-order mark is
    dropped."""
    head = f.read(CHUNK)
    codec = codec_for(encoding, head)
    decoder = codecs.getincrementaldecoder(codec)("strict")
    data, offset, lines, first = head, 0, 0, True
    while True:
        state = decoder.getstate()
        try:
            text = decoder.decode(data, final=not data)
        except UnicodeDecodeError as exc:
            bad = max(0, exc.start - len(state[0]))  # the error's offset in ``data``
            try:
                before = codecs.getincrementaldecoder(codec)("replace")
                before.setstate(state)
                done = before.decode(data[:bad]).count("\n")
            except (UnicodeError, TypeError, ValueError):
                done = 0
            raise _decode_error(path, encoding, head, offset + bad, lines + done + 1) from exc
        except UnicodeError as exc:  # a codec's own complaint, without a position
            raise ConvertError(path, f"not valid {encoding} text ({exc}); pass --encoding",
                               lines + 1) from exc  # fmt: skip
        if first and text:
            text, first = text.removeprefix("\ufeff"), False
        lines += text.count("\n")
        if text:
            yield text
        if not data:
            return
        offset += len(data)
        data = f.read(CHUNK)


def read_json(path: str, encoding: str = "utf-8"):
    try:
        return json.loads(read_text(path, encoding))
    except json.JSONDecodeError as exc:
        raise ConvertError(path, f"not JSON: {exc.msg}", exc.lineno) from exc
    except RecursionError:
        raise ConvertError(path, "not JSON this tool can read: nested too deeply") from None


class JsonDoc:
    """A JSON document and the line where each entry of its top ``depth`` levels begins, so
    that a bad entry of a whole-document file (ActivityNet, VATEX, ...) is named by its line
    like a csv row. ``value`` is what ``json.loads`` gives."""

    def __init__(self, path: str, value, lines: dict[tuple, int]) -> None:
        self.path, self.value, self.lines = path, value, lines

    def line(self, *keys) -> int | None:
        """The line of ``value[k0][k1]...``; None when not recorded (deeper than ``depth``)."""
        return self.lines.get(keys)


_SPACE = re.compile(r"[ \t\n\r]*")


def read_json_doc(path: str, encoding: str = "utf-8", depth: int = 1) -> JsonDoc:
    """The JSON document in ``path`` with the lines of its entries ``depth`` levels down
    (``depth=1``: the top list's items or object's values). Below ``depth`` the C parser
    reads each entry whole, so this is about as fast as ``json.loads``."""
    text = read_text(path, encoding)
    lines: dict[tuple, int] = {}
    try:
        value, end = _JsonWalker(text, lines).parse(0, depth, ())
        end = _SPACE.match(text, end).end()
        if end != len(text):
            raise json.JSONDecodeError("Extra data", text, end)
    except json.JSONDecodeError as exc:
        raise ConvertError(path, f"not JSON: {exc.msg}", exc.lineno) from exc
    except RecursionError:
        raise ConvertError(path, "not JSON this tool can read: nested too deeply") from None
    return JsonDoc(path, value, lines)


class _JsonWalker:
    """Parses the top levels of a JSON text by hand, recording where entries begin."""

    def __init__(self, text: str, lines: dict[tuple, int]) -> None:
        self.text, self.lines = text, lines
        self.decoder = json.JSONDecoder()
        self.at, self.line_at = 0, 1  # a position and its line, moved forward only

    def _line(self, pos: int) -> int:
        self.line_at += self.text.count("\n", self.at, pos)
        self.at = pos
        return self.line_at

    def _expect(self, pos: int, chars: str) -> tuple[str, int]:
        pos = _SPACE.match(self.text, pos).end()
        found = self.text[pos : pos + 1]
        if not found or found not in chars:
            what = " or ".join(repr(c) for c in chars)
            raise json.JSONDecodeError(f"Expecting {what}", self.text, pos)
        return found, pos + 1

    def parse(self, pos: int, depth: int, keys: tuple):
        pos = _SPACE.match(self.text, pos).end()
        if keys:
            self.lines[keys] = self._line(pos)
        opening = self.text[pos : pos + 1]
        if depth <= 0 or opening not in ("[", "{"):
            return self.decoder.raw_decode(self.text, pos)
        is_list = opening == "["
        closing = "]" if is_list else "}"
        container: list | dict = [] if is_list else {}
        after = _SPACE.match(self.text, pos + 1).end()
        if self.text[after : after + 1] == closing:
            return container, after + 1
        while True:
            if is_list:
                value, after = self.parse(after, depth - 1, (*keys, len(container)))
                container.append(value)
            else:
                _, start = self._expect(after, '"')
                key, after = self.decoder.raw_decode(self.text, start - 1)
                _, after = self._expect(after, ":")
                container[key], after = self.parse(after, depth - 1, (*keys, key))
            found, after = self._expect(after, "," + closing)
            if found == closing:
                return container, after


_UNIVERSAL = re.compile(r"(\r\n|\r|\n)")


def read_lines(path: str, encoding: str = "utf-8", universal: bool = False) -> Iterator[str]:
    """A text file's lines, each with its line break (local or fsspec URL, compressed or
    not), streamed: a file of millions of rows is never held whole. Lines are split after
    decoding, on ``\\n`` (a ``\\r`` before it stays), or with ``universal`` also on a lone
    ``\\r`` as csv files from old Macs and spreadsheets end their rows (what the csv module
    expects of a file opened with ``newline=""``)."""
    import fsspec

    splitter = _UNIVERSAL if universal else re.compile("(\n)")
    with fsspec.open(path, "rb", compression="infer") as f:
        pending = ""
        for text in decoded_chunks(f, path, encoding):
            text = pending + text
            # A "\r" at a chunk's end may be the first half of "\r\n": wait for the next.
            cut = len(text) - 1 if universal and text.endswith("\r") else len(text)
            parts = splitter.split(text[:cut])
            pending = parts.pop() + text[cut:]
            for i in range(0, len(parts), 2):
                yield parts[i] + parts[i + 1]
        parts = splitter.split(pending)
        for i in range(0, len(parts) - 1, 2):
            yield parts[i] + parts[i + 1]
        if parts[-1]:
            yield parts[-1]


def read_jsonl(path: str, encoding: str = "utf-8") -> Iterator[tuple[int, object]]:
    """``(line number, value)`` for each non-blank line of a JSON Lines file, streamed."""
    for number, line in enumerate(read_lines(path, encoding, universal=True), 1):
        if not line.strip():
            continue
        try:
            yield number, json.loads(line)
        except json.JSONDecodeError as exc:
            raise ConvertError(path, f"not a JSON line: {exc.msg}", number) from exc


class _Utf8Reader:
    """A binary ``read(n)`` of decoded text chunks as UTF-8, for ijson (whose fast parsers
    read bytes, in UTF-8)."""

    def __init__(self, chunks: Iterator[str]) -> None:
        self.chunks, self.buffer = chunks, b""

    def read(self, n: int = -1) -> bytes:
        while n < 0 or len(self.buffer) < n:
            chunk = next(self.chunks, None)
            if chunk is None:
                break
            self.buffer += chunk.encode("utf-8", "surrogatepass")
        size = len(self.buffer) if n < 0 else n
        out, self.buffer = self.buffer[:size], self.buffer[size:]
        return out


def iter_json_object(path: str, encoding: str = "utf-8") -> Iterator[tuple[str, object]]:
    """The top-level ``key, value`` pairs of a JSON object, parsed incrementally (ijson), so
    that a file of gigabytes (HowTo100M's ``caption.json``) is never held whole."""
    import fsspec
    import ijson

    with fsspec.open(path, "rb", compression="infer") as f:
        source = _Utf8Reader(decoded_chunks(f, path, encoding))
        try:
            yield from ijson.kvitems(source, "", use_float=True)
        except ijson.JSONError as exc:
            raise ConvertError(path, f"not JSON: {exc}") from exc


# A UTF-8 byte-order mark decoded as Latin-1 or cp1252 (and often saved again as UTF-8):
# what a spreadsheet round trip leaves before the first column's name.
_GARBLED_BOMS = ("\u00ef\u00bb\u00bf", "\ufeff")


def clean_header(names: list[str]) -> tuple[list[str], bool]:
    """Column names without surrounding spaces, and the first without byte-order marks (real
    or garbled, see ``_GARBLED_BOMS``) and the quotes that then no longer opened the field.
    Returns the names and whether a mark was removed."""
    names = [(n or "").strip() for n in names]
    mended = False
    if names:
        first = names[0]
        while first.startswith(_GARBLED_BOMS):
            first = first.removeprefix(_GARBLED_BOMS[0]).removeprefix(_GARBLED_BOMS[1])
            mended = True
        if mended and len(first) >= 2 and first[0] == first[-1] == '"':
            first = first[1:-1].replace('""', '"')
        names[0] = first.strip()
    return names, mended


def read_csv(
    path: str,
    required: Iterable[str],
    encoding: str = "utf-8",
    expected: Iterable[str] = (),
    report=None,
) -> Iterator[tuple[int, dict]]:
    """Rows of a csv by header name, with their line numbers, streamed; quoted fields may
    hold commas and newlines. Fails on a missing ``required`` column, naming the ones the
    file has; a missing ``expected`` one (read when there) is a note in ``report`` with the
    same list, since a garbled name would otherwise leave a column empty without a word.
    Missing trailing cells read as empty."""
    # Panda-70M's list cells run past the csv module's default limit of 128 KiB.
    csv.field_size_limit(max(csv.field_size_limit(), FIELD_LIMIT))
    reader = csv.DictReader(read_lines(path, encoding, universal=True), restval="")
    try:
        yield from _csv_rows(path, reader, required, expected, report)
    except csv.Error as exc:  # a broken quote, a field past the limit
        raise ConvertError(path, f"not a csv line the reader accepts: {exc}",
                           reader.line_num or 1) from None  # fmt: skip


def _csv_rows(path, reader, required, expected, report) -> Iterator[tuple[int, dict]]:
    header, mended = clean_header(list(reader.fieldnames or []))
    reader.fieldnames = header
    has = ", ".join(header) or "none"
    missing = [c for c in required if c not in header]
    if missing:
        hint = ""
        if "\x00" in has:  # UTF-16/32 read as UTF-8 or Latin-1, or UTF-32 as UTF-16
            hint = "; its NUL characters say the file is UTF-16 or UTF-32: pass --encoding"
            has = has.replace("\x00", "")
        raise ConvertError(
            path, f"no column {', '.join(missing)} in the header (it has: {has}){hint}", 1
        )
    if report is not None:
        if mended:
            report.note(f"{path}: the header began with a byte-order mark garbled by another"
                        " encoding (\u00ef\u00bb\u00bf): removed")  # fmt: skip
        absent = [c for c in expected if c not in header]
        if absent:
            report.note(f"{path}: no column {', '.join(absent)} in the header (it has: {has}):"
                        " left empty")  # fmt: skip
        twice = sorted({c for c in header if header.count(c) > 1})
        if twice:
            report.note(f"{path}: column {', '.join(twice)} named twice: the last one is read")
    line = reader.line_num
    for row in reader:
        if None in row:  # more fields than the header names
            raise ConvertError(
                path, f"{len(header) + len(row[None])} fields, header has {len(header)}", line + 1
            )
        yield line + 1, row
        line = reader.line_num
