"""Which source video a row comes from, and which part of it: ``(source, start, end)``.

Public video datasets share videos (Kinetics 400/600/700 and VATEX are cut from the same
YouTube videos; ActivityNet, YouCook2 and MSR-VTT overlap too), and each names them its own
way: a watch URL, a ``youtu.be`` link, a bare id, Kinetics' and VATEX's clip names
``<id>_<start>_<end>``, ActivityNet's ``v_<id>``. A row's *source* is one canonical text for
all of these, so that rows of different datasets compare:

==========  ==============================================================================
youtube     ``youtube:<11-character id>``, from (first that applies) the ``youtube_id``
            column the converters write, any YouTube URL form or bare id in ``location``
            or ``url``, a clip name or ``v_<id>`` in ``id``, or a clip name or ``v_<id>`` as
            the file name of a local or object-store ``location``
url         ``url:<host><path>?<query>`` for other http(s) URLs (``url`` column first):
            scheme, credentials, fragment, default port, tracking (``utm_*``) and signing
            parameters dropped, host lower case, query sorted, escapes normalised
member      ``member:<tar>#<name>``: a sample inside a webdataset tar (a tar input's rows)
digest      ``sha256:<hex>`` of a local or object-store file (files over 4 MiB: of its size,
            first and last 2 MiB), so copies of one file under other names are one source
path        ``path:<absolute path or URL>`` for a file that cannot be read
none        no location at all: never the same as any other row
==========  ==============================================================================

The window is ``start``/``end`` (seconds in the source video), else ``clip_start``/``clip_end``
(a converter row whose file is already the clip), else the clip name's, else the whole video:
``(0, inf)``. A missing end is open (``inf``).

:func:`row_source` is the rule, one row at a time. :func:`table_sources` gives the same
answer for a whole arrow table in vectorised form (ten million rows in seconds): rows in the
common forms are resolved by regular expressions over whole columns, and every other row goes
through :func:`row_source` itself, so the two cannot disagree (a property test checks it).
"""

from __future__ import annotations

import hashlib
import math
import os
import re
from collections.abc import Callable, Mapping
from typing import NamedTuple
from urllib.parse import parse_qsl, quote, unquote, urlencode, urlsplit

import numpy as np
import pyarrow as pa
import pyarrow.compute as pc

from video2numpy.youtube import parse_youtube_id

# The columns a row's source and window are read from (any may be missing).
SOURCE_COLUMNS = ("youtube_id", "location", "url", "id", "start", "end", "clip_start", "clip_end")
KINDS = ("youtube", "url", "member", "digest", "path", "none")

_YT = r"[A-Za-z0-9_-]{11}"
_YOUTUBE_ID = re.compile(rf"{_YT}")
_CLIP_NAME = re.compile(rf"({_YT})_([0-9]+)_([0-9]+)")  # Kinetics, VATEX: <id>_<start>_<end>
_ACTIVITYNET = re.compile(rf"v_({_YT})")  # ActivityNet: v_<id>
_STEM = re.compile(r"(?:.*/)?([^/]+?)(?:\.[A-Za-z0-9]{1,5})?")  # a file name without suffix
_TAR_MEMBER = re.compile(r"(.+\.tar)#(.+)")
# Query parameters that say who asked, or sign a request, not which resource it is.
_DROPPED_PARAMS = re.compile(
    r"(utm_.*|x-amz-.*|x-goog-.*|signature|expires|key-pair-id|policy)", re.IGNORECASE
)
_PATH_SAFE = "/:@!$&'()*+,;=-._~"
DIGEST_WHOLE = 4 << 20  # files up to this size are hashed whole
DIGEST_PART = 2 << 20  # larger ones: size, first and last DIGEST_PART bytes


class Source(NamedTuple):
    source: str | None  # None: no location, never equal to another row
    start: float
    end: float  # inf: open
    kind: str


def youtube_of_name(name: str) -> tuple[str, float | None, float | None] | None:
    """``(youtube id, start, end)`` of a dataset's clip name (``<id>_<start>_<end>``: Kinetics,
    VATEX) or ``(id, None, None)`` of ActivityNet's ``v_<id>``; None for any other name."""
    match = _CLIP_NAME.fullmatch(name)
    if match:
        return match.group(1), float(match.group(2)), float(match.group(3))
    match = _ACTIVITYNET.fullmatch(name)
    if match:
        return match.group(1), None, None
    return None


def is_http(location: str) -> bool:
    try:
        return urlsplit(location.strip()).scheme.lower() in ("http", "https")
    except ValueError:
        return False


def normalise_url(url: str) -> str | None:
    """``url:<host><path>?<query>`` of an http(s) URL (see the module's table), else None."""
    try:
        parts = urlsplit(url.strip())
        port = parts.port
    except ValueError:
        return None
    scheme = parts.scheme.lower()
    if scheme not in ("http", "https") or not parts.hostname:
        return None
    host = parts.hostname.lower()
    if port is not None and port != {"http": 80, "https": 443}[scheme]:
        host = f"{host}:{port}"
    path = quote(unquote(parts.path), safe=_PATH_SAFE) or "/"
    query = sorted(
        (k, v)
        for k, v in parse_qsl(parts.query, keep_blank_values=True)
        if not _DROPPED_PARAMS.fullmatch(k)
    )
    return f"url:{host}{path}" + (f"?{urlencode(query)}" if query else "")


def file_digest(location: str) -> str | None:
    """``sha256:<hex>`` of a local or object-store file's bytes (whole up to 4 MiB; else its
    size, first and last 2 MiB), or None when it cannot be read. Only regular files are
    read, and never past the size they report (a device or a pipe named as a video would
    otherwise be read forever)."""
    import fsspec

    try:
        fs, path = fsspec.core.url_to_fs(location)
        info = fs.info(path)
        size = info.get("size")
        if info.get("type") != "file" or not isinstance(size, int):
            return None
        if "://" not in location or location.startswith("file://"):
            import stat

            if not stat.S_ISREG(os.stat(path).st_mode):
                return None
        h = hashlib.sha256()
        with fs.open(path, "rb") as f:
            if size <= DIGEST_WHOLE:
                h.update(f.read(size))
            else:
                h.update(f"{size}:".encode())
                h.update(f.read(DIGEST_PART))
                f.seek(size - DIGEST_PART)
                h.update(f.read(DIGEST_PART))
    except Exception:  # unreadable for any reason (missing, refused, offline): its path
        return None
    return f"sha256:{h.hexdigest()}"


def path_source(location: str) -> str:
    """``path:`` and a local file's absolute path (or the URL as written)."""
    location = location.strip()
    if "://" in location and not location.startswith("file://"):
        return f"path:{location}"
    return f"path:{os.path.abspath(location.removeprefix('file://'))}"


def _text(value) -> str | None:
    if value is None or (isinstance(value, float) and math.isnan(value)):
        return None
    return value if isinstance(value, str) else str(value)


def _number(value) -> float | None:
    if value is None or isinstance(value, (str, bytes, bool)):
        return None
    try:
        value = float(value)
    except (TypeError, ValueError):
        return None
    return None if math.isnan(value) else value


def _window(row: Mapping, *names: tuple[float | None, float | None] | None):
    """The row's window: start/end, else clip_start/clip_end, else the first clip name's;
    ``(0, inf)`` when none is known, or when it is empty (end <= start)."""
    candidates = [
        (_number(row.get("start")), _number(row.get("end"))),
        (_number(row.get("clip_start")), _number(row.get("clip_end"))),
        *[n for n in names if n is not None],
    ]
    for start, end in candidates:
        if start is not None or end is not None:
            start = max(start or 0.0, 0.0)
            end = math.inf if end is None else end
            return (start, end) if end > start else (0.0, math.inf)
    return 0.0, math.inf


def row_source(row: Mapping, digest: Callable[[str], str | None] = file_digest) -> Source:
    """The source and window of one row (a mapping of any of :data:`SOURCE_COLUMNS`)."""
    location, url, ident = (_text(row.get(c)) for c in ("location", "url", "id"))
    named = youtube_of_name(ident) if ident is not None else None
    stem = None
    if location is not None and not is_http(location):
        match = _STEM.fullmatch(location.strip())
        stem = youtube_of_name(match.group(1)) if match else None
    windows = [n[1:] if n and n[1] is not None else None for n in (named, stem)]
    youtube_id = _text(row.get("youtube_id"))
    found = youtube_id.strip() if youtube_id and _YOUTUBE_ID.fullmatch(youtube_id.strip()) else None
    found = found or next(
        (y for y in (parse_youtube_id(v) for v in (location, url) if v is not None) if y), None
    )
    found = found or next((n[0] for n in (named, stem) if n is not None), None)
    if found:
        return Source(f"youtube:{found}", *_window(row, *windows), "youtube")
    window = _window(row, *windows)
    if location is not None and _TAR_MEMBER.fullmatch(location.strip()):
        tar, member = _TAR_MEMBER.fullmatch(location.strip()).groups()
        tar = normalise_url(tar) or path_source(tar)
        return Source(f"member:{tar.split(':', 1)[1]}#{member}", *window, "member")
    for value in (url, location):
        normal = normalise_url(value) if value is not None else None
        if normal:
            return Source(normal, *window, "url")
    if location is None or not location.strip():
        return Source(None, *window, "none")
    hashed = digest(location.strip())
    if hashed:
        return Source(hashed, *window, "digest")
    return Source(path_source(location), *window, "path")


# -- the same rule over whole columns ----------------------------------------------------------

_YT_HOST = r"(?:(?:www\.|m\.|music\.)?youtube\.com|(?:www\.)?youtube-nocookie\.com)"
_FAST_YOUTUBE = (
    rf"^(?:https?://)?(?:{_YT_HOST}/watch\?v=(?P<a>{_YT})(?:&[^#]*)?(?:#.*)?"
    rf"|{_YT_HOST}/(?:embed|v|shorts|live|e)/(?P<b>{_YT})(?:[/?#].*)?"
    rf"|youtu\.be/(?P<c>{_YT})(?:[/?#].*)?"
    rf"|(?P<d>{_YT}))$"
)
# An http URL whose normal form is itself without scheme: lower-case host, no port, user,
# query, fragment, escape or space, and not YouTube's (which row_source reads otherwise).
_FAST_URL = r"^https?://(?P<rest>[a-z0-9.-]+/[A-Za-z0-9._~!$&'()*+,;=:@/-]*)$"
_FAST_CLIP = rf"^(?P<id>{_YT})_(?P<s>[0-9]+)_(?P<e>[0-9]+)$"
_FAST_ACTIVITYNET = rf"^v_(?P<id>{_YT})$"


def _column(table: pa.Table, name: str) -> pa.Array | None:
    if name not in table.column_names:
        return None
    column = table.column(name).combine_chunks()
    if pa.types.is_dictionary(column.type):
        column = column.dictionary_decode()
    return column


def _strings(column: pa.Array | None, n: int) -> pa.Array:
    if column is None or pa.types.is_null(column.type):
        return pa.nulls(n, pa.string())
    if pa.types.is_string(column.type) or pa.types.is_large_string(column.type):
        return column.cast(pa.string())
    if pa.types.is_integer(column.type):
        return column.cast(pa.string())
    return pa.array([_text(v) for v in column.to_pylist()], pa.string())  # anything else


def _numbers(column: pa.Array | None, n: int) -> np.ndarray:
    """float64 with NaN for missing (and for values that are not numbers)."""
    if column is None:
        return np.full(n, np.nan)
    if pa.types.is_integer(column.type) or pa.types.is_floating(column.type):
        return column.cast(pa.float64()).to_numpy(zero_copy_only=False)
    values = [_number(v) for v in column.to_pylist()]
    return np.array([np.nan if v is None else v for v in values], np.float64)


def _match(values: pa.Array, pattern: str, group: str) -> pa.Array:
    """The named group of a full match, null where the value does not match."""
    struct = pc.extract_regex(values, pattern)
    found = pc.struct_field(struct, group)
    return pc.if_else(pc.is_valid(struct), found, pa.scalar(None, pa.string()))


def _youtube_fast(values: pa.Array) -> pa.Array:
    struct = pc.extract_regex(values, _FAST_YOUTUBE)
    parts = [pc.struct_field(struct, g) for g in "abcd"]
    empty_as_null = [pc.if_else(pc.equal(p, ""), pa.scalar(None, pa.string()), p) for p in parts]
    return pc.if_else(
        pc.is_valid(struct), pc.coalesce(*empty_as_null), pa.scalar(None, pa.string())
    )


def _np(mask) -> np.ndarray:
    return mask.fill_null(False).to_numpy(zero_copy_only=False)


def _take(values: pa.Array, rows: np.ndarray) -> pa.Array:
    return values.take(pa.array(rows, pa.int64()))


def table_sources(
    table: pa.Table, digest: Callable[[str], str | None] = file_digest
) -> tuple[pa.Array, np.ndarray, np.ndarray, np.ndarray]:
    """``(sources, starts, ends, kinds)`` of every row: the same as :func:`row_source` row by
    row (``sources`` a string array, null for kind ``none``; ``kinds`` indices into
    :data:`KINDS`).

    Rule by rule, a row is settled here only when every earlier rule surely does not apply
    to it (its column is null, or its text cannot match); each rule looks only at the rows
    still open that could match it, so a table of converter output (``youtube_id`` on every
    row) costs one pass over that column. Every row left open goes to :func:`row_source`."""
    n = table.num_rows
    youtube_id, location, url, ident = (
        _strings(_column(table, c), n) for c in ("youtube_id", "location", "url", "id")
    )
    starts, ends, clip_starts, clip_ends = (
        _numbers(_column(table, c), n) for c in ("start", "end", "clip_start", "clip_end")
    )
    parts: list[pa.Array] = []  # settled sources, rule by rule; ``where`` points into them
    where = np.full(n, -1, np.int64)
    kinds = np.ones(n, np.int8)  # url, unless settled as youtube or left to row_source
    used = 0

    def settle(rows: np.ndarray, values: pa.Array, prefix: str, kind: int) -> None:
        nonlocal used
        parts.append(pc.binary_join_element_wise(prefix, values, ""))
        where[rows] = used + np.arange(len(rows))
        kinds[rows] = kind
        used += len(rows)

    no_youtube_id, no_url = _np(pc.is_null(youtube_id)), _np(pc.is_null(url))
    # 1. the youtube_id column
    if youtube_id.null_count < n:
        ok = _np(pc.match_substring_regex(youtube_id, rf"^{_YT}$"))
        settle(np.flatnonzero(ok), youtube_id.filter(pa.array(ok)), "youtube:", 0)
    # 2. a YouTube URL or bare id in location (only text holding "youtu" or of 11 characters)
    rows = np.flatnonzero(no_youtube_id & (where < 0))
    if len(rows):
        at = _take(location, rows)
        maybe = _np(pc.match_substring(at, "youtu")) | _np(pc.equal(pc.utf8_length(at), 11))
        rows = rows[maybe]
    if len(rows):
        found = _youtube_fast(_take(location, rows))
        ok = _np(pc.is_valid(found))
        settle(rows[ok], found.filter(pa.array(ok)), "youtube:", 0)
    # 3. a clip name or v_<id> in id, when location is surely no YouTube video and no url;
    # the id's clip name also gives the window of rows without start, end or clip bounds.
    no_window = np.isnan(starts) & np.isnan(ends) & np.isnan(clip_starts) & np.isnan(clip_ends)
    clip_rows = np.flatnonzero(((where < 0) | no_window) & _np(pc.match_substring(ident, "_")))
    names = _take(ident, clip_rows)  # both name forms hold a "_"
    clip = pc.extract_regex(names, _FAST_CLIP)
    clip_ok = _np(pc.is_valid(clip))
    name_id = pc.coalesce(
        pc.if_else(pc.is_valid(clip), pc.struct_field(clip, "id"), pa.scalar(None, pa.string())),
        _match(names, _FAST_ACTIVITYNET, "id"),
    )
    has_name = np.zeros(n, bool)
    has_name[clip_rows] = _np(pc.is_valid(name_id))
    pick = (where[clip_rows] < 0) & no_youtube_id[clip_rows] & no_url[clip_rows] & has_name[
        clip_rows]  # fmt: skip
    if pick.any():
        at = _take(location, clip_rows[pick])  # surely no YouTube video there:
        surely = _np(pc.is_null(at)) | _np(pc.starts_with(at, "/")) | (  # none, a path,
            _np(pc.match_substring_regex(at, r"^[A-Za-z][A-Za-z0-9+.-]*://"))  # another
            & ~_np(pc.match_substring_regex(at, r"^(?i)https?://")))  # scheme  # fmt: skip
        pick[pick] = surely
    settle(clip_rows[pick], name_id.filter(pa.array(pick)), "youtube:", 0)
    # 4. an http URL already in its normal form, not YouTube's, in location (has_name is
    # known for every row still open: they all went through step 3's test)
    web = np.flatnonzero((where < 0) & no_youtube_id & no_url & ~has_name)
    if len(web):
        at = _take(location, web)
        rest = _match(at, _FAST_URL, "rest")
        ok = _np(pc.is_valid(rest)) & ~_np(pc.match_substring(rest, "youtu"))
        settle(web[ok], rest.filter(pa.array(ok)), "url:", 1)
    # Windows: start/end, else clip_start/clip_end, else the id's clip name.
    name_start, name_end = np.full(n, np.nan), np.full(n, np.nan)
    if clip_ok.any():
        for out, group in ((name_start, "s"), (name_end, "e")):
            digits = pc.struct_field(clip, group).filter(pa.array(clip_ok))
            out[clip_rows[clip_ok]] = pc.cast(digits, pa.float64()).to_numpy(zero_copy_only=False)
    start, end = np.full(n, np.nan), np.full(n, np.nan)
    known = np.zeros(n, bool)
    for s, e in ((starts, ends), (clip_starts, clip_ends), (name_start, name_end)):
        use = ~known & ~(np.isnan(s) & np.isnan(e))
        start[use], end[use] = s[use], e[use]
        known |= use
    start = np.where(np.isnan(start), 0.0, np.maximum(start, 0.0))
    end = np.where(np.isnan(end), np.inf, end)
    empty = end <= start
    start[empty], end[empty] = 0.0, np.inf
    # A row with no window of its own and a local location may be named by its file (the
    # stem rule): row_source decides those, and every row not settled above.
    no_window = ~known
    if no_window.any():
        maybe = np.flatnonzero(no_window)
        at = _take(location, maybe)
        no_window[maybe] = _np(pc.is_valid(at)) & ~_np(pc.match_substring_regex(
            at, "^https?://"))  # fmt: skip
    rest = np.flatnonzero((where < 0) | no_window)
    if len(rest):
        columns = {c: _column(table, c) for c in SOURCE_COLUMNS if c in table.column_names}
        picked = {c: _take(col, rest).to_pylist() for c, col in columns.items()}
        found_sources = []
        for j, i in enumerate(rest.tolist()):
            found = row_source({c: v[j] for c, v in picked.items()}, digest)
            found_sources.append(found.source)
            start[i], end[i] = found.start, found.end
            kinds[i] = KINDS.index(found.kind)
        parts.append(pa.array(found_sources, pa.string()))
        where[rest] = used + np.arange(len(rest))
        used += len(rest)
    parts.append(pa.nulls(1, pa.string()))
    where[where < 0] = used  # (none left: every row is settled or went to row_source)
    sources = pa.concat_arrays([p.cast(pa.string()) for p in parts]).take(pa.array(where))
    return sources, start, end, kinds
