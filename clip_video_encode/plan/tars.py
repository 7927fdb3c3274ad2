"""Webdataset tars as input (e.g. video2dataset's output): one output shard per input tar.

Tars are read as streams (local or fsspec URL, brace patterns like
``data/{00000..00009}.tar``). Each sample's video member is streamed, in bounded chunks, to a
scratch file whose name is ours, never a path taken from the tar, so a 4 GB video costs no
memory; only the small ``txt`` and ``json`` members are read into memory. ``txt`` becomes
the caption and ``json`` fields are carried into ``KEY.json``. Input keys are kept; an input
shard name is kept when it is safe as a file name (:func:`shard_names`).

A damaged tar (cut short, a bad header) never stops the run: the samples before the damage
are read, the sample it cut into fails with the tar's error, and the shard says so.
"""

from __future__ import annotations

import hashlib
import json
import os
import re
import tarfile
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field

import fsspec

from video2numpy.jsonsafe import dumps

VIDEO_EXTENSIONS = ("mp4", "webm", "mkv", "mov", "avi", "m4v", "mpg", "mpeg", "ts", "flv", "3gp",
                    # raw elementary streams, by FFmpeg's raw demuxers' own extensions
                    "h264", "264", "avc", "hevc", "h265", "265", "m1v", "m2v", "mpv")  # fmt: skip
SMALL_MEMBERS = ("txt", "json")  # read into memory; other members are streamed or skipped
SMALL_LIMIT = 16 << 20  # a txt or json member larger than this is left out, with a warning
CHUNK = 1 << 20  # bytes copied at a time from a tar member to its scratch file
_MEMBER = re.compile(r"^((?:.*/|)[^./]+)\.([^/]*)$")  # webdataset's key/extension split
_SAFE_KEY = re.compile(r"^[A-Za-z0-9_-]+$")
_UNSAFE = re.compile(r"[^A-Za-z0-9_-]")
MAX_SHARD_NAME = 120  # bytes; with the suffixes added to it, well under 255
DAMAGE_KEY = "tar_damage"  # the row of a tar unreadable before its first sample


def _without_query(url: str) -> str:
    """``url`` without its query (``?X-Amz-Signature=...``); a local path keeps its ``?``,
    which is a character of its file name there."""
    remote = "://" in url and not url.startswith("file://")
    return url.split("?", 1)[0] if remote else url


def is_tar_input(src: str) -> bool:
    path = _without_query(src)
    return bool(re.search(r"\.tar(\}|$)", path)) or ("{" in src and ".tar" in src)


def expand_tars(src: str) -> list[str]:
    """The input tar URLs of a path, URL or brace pattern, in order."""
    from braceexpand import braceexpand

    return [u for part in src.split("::") for u in braceexpand(part)]


def shard_name(url: str) -> str:
    """The input tar's own name: its base name without ``.tar``, as it is (maybe unsafe)."""
    name = os.path.basename(_without_query(url))
    return name[: -len(".tar")] if name.endswith(".tar") else name


def shard_names(urls: list[str]) -> list[tuple[str, str]]:
    """``(name, original)`` for each input tar: the name its output shard gets, and the
    tar's own. The name is the original when that is safe: only ``A-Z a-z 0-9 _ -``,
    starting with a letter or digit (``..``, ``.``, ``/``, NUL, unicode or an empty name
    would be paths of their own, or clash with the ``_``-names of the destination). Else
    the unsafe characters become ``_`` (``shard`` is put before a name that does not start
    with a letter or digit), a name longer than :data:`MAX_SHARD_NAME` is cut and given a
    hash of the original, and a name already taken, even in another case only (``A`` and
    ``a`` are one file on macOS and Windows), gets a hash of its URL: every input tar has
    an output of its own, the same on every run of the same input."""
    used: set[str] = set()
    out = []
    for url in urls:
        original = shard_name(url)
        name = _UNSAFE.sub("_", original)
        if not name[:1].isalnum():
            name = f"shard{name}"
        if len(name) > MAX_SHARD_NAME:
            name = f"{name[: MAX_SHARD_NAME - 9]}_{_hash(original)}"
        if name.lower() in used:
            name = f"{name[: MAX_SHARD_NAME - 9]}_{_hash(url)}"
            while name.lower() in used:  # two URLs whose hashes collide too: never in practice
                name += "_"
        used.add(name.lower())
        out.append((name, original))
    return out


def _hash(text: str) -> str:
    return hashlib.sha1(text.encode("utf-8", "surrogateescape")).hexdigest()[:8]


@dataclass
class TarSample:
    """One sample of an input tar, as far as it could be read."""

    key: str | None  # None: the tar was unreadable before its first member
    position: int
    parts: dict[str, bytes] = field(default_factory=dict)  # small members, read
    files: dict[str, str] = field(default_factory=dict)  # members streamed to scratch files
    members: list[str] = field(default_factory=list)  # every member's extension, in order
    links: dict[str, str] = field(default_factory=dict)  # link members: extension -> target
    damage: str | None = None  # the tar is damaged here: this sample may be incomplete


class _Header(tarfile.TarInfo):
    """A tar header that tells a tar cut short from a whole one. Python's stream reader
    takes a header cut short, a missing one or a bad one after the first member for the end
    of the archive, and so loses the rest without a word; a whole tar ends with a block of
    zeros instead."""

    @classmethod
    def fromtarfile(cls, tar):
        try:
            return super().fromtarfile(tar)
        except tarfile.EOFHeaderError:
            raise  # the end-of-archive block: a whole tar
        except tarfile.EmptyHeaderError:
            if tar.offset == 0:
                raise
            raise tarfile.ReadError(
                f"it ends at byte {tar.offset} without its end-of-archive blocks (cut short)"
            ) from None
        except tarfile.TruncatedHeaderError:
            raise tarfile.ReadError(f"it is cut short inside the header at byte {tar.offset}") \
                from None  # fmt: skip
        except tarfile.InvalidHeaderError as exc:
            raise tarfile.ReadError(f"no valid header at byte {tar.offset} ({exc})") from None


class _ScratchFailed(Exception):
    """Writing a scratch file failed: an error of this machine, not of the tar."""


def read_tar(
    url: str, want: Callable[[int, str, int], bool | str] | None = None
) -> Iterator[TarSample]:
    """The samples of a tar in order, streaming. ``want(position, extension, size)`` says
    what to do with a member: True to read it into memory (``parts``), a path to stream it
    there (``files``), False to skip it; default: read every member. Never raises for a
    damaged or unreadable tar: the sample it cut into (or, before the first member, a
    sample with key None) carries ``damage`` and is the last."""
    want = want or (lambda position, ext, size: True)
    current: TarSample | None = None
    tar = None
    try:
        with fsspec.open(url, "rb") as f, tarfile.open(fileobj=f, mode="r|*",
                                                       tarinfo=_Header) as tar:  # fmt: skip
            for member in tar:
                link = member.islnk() or member.issym()  # GNU tar's second name of a file
                if not (member.isfile() or link):
                    continue
                match = _MEMBER.match(member.name)
                if not match:
                    continue
                key, ext = match.group(1), match.group(2).lower()
                if current is None or key != current.key:
                    if current is not None:
                        yield current
                    current = TarSample(key, 0 if current is None else current.position + 1)
                current.members.append(ext)
                if link:  # no data of its own: the sample is said to have none
                    current.links[ext] = member.linkname
                    continue
                how = want(current.position, ext, member.size)
                if how is True:
                    current.parts[ext] = tar.extractfile(member).read()
                elif how:
                    current.files[ext] = how  # named first: a copy cut short is removed too
                    _stream(tar.extractfile(member), how)
    except _ScratchFailed as exc:
        raise exc.__cause__ from None
    except Exception as exc:  # noqa: BLE001 (whatever a damaged stream raises is its damage)
        where = f" at about byte {tar.offset}" if tar is not None else ""
        text = str(exc) or type(exc).__name__
        damage = f"{url} is damaged or unreadable{where}: {text}"
        if current is None:
            yield TarSample(None, 0, damage=damage)
        else:
            current.damage = damage
            yield current
        return
    if current is not None:
        yield current


def _stream(src, path: str) -> None:
    """Copy a member to ``path`` in chunks of :data:`CHUNK` bytes. An error of this machine
    (the scratch file cannot be made or written) stops the run; only the tar's own errors
    are the tar's damage."""
    try:
        out = open(path, "wb")
    except OSError as exc:
        raise _ScratchFailed() from exc
    with out:
        while True:
            chunk = src.read(CHUNK)  # the tar's errors (damage) propagate as they are
            if not chunk:
                return
            try:
                out.write(chunk)
            except OSError as exc:
                raise _ScratchFailed() from exc


def iter_tar_samples(url: str) -> Iterator[tuple[str, dict[str, bytes]]]:
    """``(key, {extension: bytes})`` per sample of a tar this tool wrote (a committed
    shard, read whole member by member); raises ``tarfile.ReadError`` if it is damaged."""
    for sample in read_tar(url):
        if sample.damage is not None:
            raise tarfile.ReadError(sample.damage)
        yield sample.key, sample.parts


def tar_rows(
    url: str,
    scratch: str,
    keep: Callable[[int], bool] | None = None,
    encoding: str | None = None,
    name: str | None = None,
) -> Iterator[dict]:
    """Input rows of one tar. Each video is streamed to ``scratch`` (a folder of this tar's
    own: names are the sample's position) and named in ``fetch``; the caller deletes it once
    its video is finished. ``keep(position)``: whether a sample's video is wanted (the others
    are not written out). ``encoding``: of the ``txt`` and ``json`` members (UTF-8); text
    that does not decode is left out and the row's ``input_warning`` says so, never
    replaced by U+FFFD characters. ``name``: the output shard's name; when it is not the
    tar's own, each row keeps the original as ``source_shard``.

    A damaged tar: the row of the sample the damage cut into (or, when it came before the
    first sample, a row of key ``tar_damage``) fails with the tar's error and carries
    ``tar_error``, which the shard's stats record; no row follows it."""
    os.makedirs(scratch, exist_ok=True)
    original = shard_name(url)
    used: set[str] = set()

    def want(position: int, ext: str, size: int) -> bool | str:
        if ext in SMALL_MEMBERS:
            return size <= SMALL_LIMIT
        if ext in VIDEO_EXTENSIONS and (keep is None or keep(position)):
            return os.path.join(scratch, f"{position}.{ext}")
        return False  # not used: never read

    for sample in read_tar(url, want):
        yield _row(sample, url, original, name, encoding, used)


def _row(sample: TarSample, url: str, original: str, name: str | None,
         encoding: str | None, used: set[str]) -> dict:  # fmt: skip
    key = DAMAGE_KEY if sample.key is None else sample.key
    problems: list[str] = []
    for ext in SMALL_MEMBERS:
        if ext in sample.members and ext not in sample.parts and sample.damage is None:
            problems.append(f"the {ext} member is larger than {SMALL_LIMIT >> 20} MiB; left out")
    meta = _json(sample.parts.get("json"), encoding, problems)
    safe_key = _unique(key if _SAFE_KEY.match(key) else _UNSAFE.sub("_", key), key, used)
    video_ext = next((e for e in VIDEO_EXTENSIONS if e in sample.members), None)
    row = {
        "key": safe_key,
        "id": meta.get("key", key) if isinstance(meta.get("key"), str) else sample.key,
        "location": f"{url}#{key}.{video_ext or '?'}" if sample.key is not None else url,
        "caption": _text(sample.parts.get("txt"), encoding, problems),
        "start": None,
        "end": None,
        "split": None,
        "extra": {k: _json_form(v) for k, v in meta.items() if isinstance(k, str)},
    }
    if safe_key != key:
        row["extra"]["source_key"] = key
    if name is not None and name != original:
        row["extra"]["source_shard"] = original
    if problems:
        row["input_warning"] = "; ".join(problems)
    kept = sample.files.get(video_ext) if video_ext else None
    for path in sample.files.values():  # a second video member, or one cut short
        if path != kept or sample.damage is not None:
            _remove(path)
    if sample.damage is not None:
        row["fetch"] = ""
        row["missing_member"] = row["tar_error"] = sample.damage
    elif video_ext is None:
        row["fetch"] = ""
        upstream = meta.get("status")
        if isinstance(upstream, str) and upstream != "success":
            # The tool that wrote the tar failed this sample (video2dataset writes its json
            # and txt, no video): its own status and message are kept.
            message = meta.get("error_message")
            row["upstream_failure"] = (
                upstream,
                f"{message}" if message else f"{upstream} upstream (no video member)",
            )
        row["missing_member"] = (
            f"no video member in sample {key!r} of {url} (members: {', '.join(sample.members)})"
        )
    elif video_ext in sample.links and kept is None:
        row["fetch"] = ""
        row["missing_member"] = (
            f"the {video_ext} member of sample {key!r} in {url} is a link to"
            f" {sample.links[video_ext]!r}: links in a tar are not followed (tar stores a"
            " second name of a file that way); store the file itself under each name"
        )
    else:
        row["fetch"] = kept or ""  # "": a sample not wanted (keep)
    return row


def _remove(path: str) -> None:
    try:
        os.remove(path)
    except OSError:
        pass


def _json_form(value):
    """A json field's value as every reader shows it: text, numbers, booleans and null as
    they are, an object or a list as its JSON text. Objects and lists were kept as they
    were, but a field's type is the same for the whole dataset (the card's, for Hugging
    Face ``datasets``; text in the parquet): a field that is an object in one sample and
    text in another, or objects of other keys in another shard, was typed text, and
    ``datasets`` showed the objects as Python reprs (``"{'a': 1}"``) where the parquet had
    JSON. As JSON text from the start, the value reads the same everywhere."""
    return dumps(value) if isinstance(value, (dict, list)) else value


def _unique(safe: str, original: str, used: set[str]) -> str:
    """A key not yet used in this tar: keys that collide once sanitised (``my key`` and
    ``my_key``) get a suffix from a hash of the original, the same on every run."""
    key = safe
    if key in used:
        key = f"{safe}_{hashlib.sha1(original.encode()).hexdigest()[:8]}"
        while key in used:  # two originals whose hashes collide too: never in practice
            key += "_"
    used.add(key)
    return key


def _json(data: bytes | None, encoding: str | None, problems: list[str]) -> dict:
    text = _text(data, encoding, problems, "json")
    if not text:
        return {}
    try:
        value = json.loads(text)
    except ValueError as exc:
        problems.append(f"the json member is not JSON ({exc}); its fields are left out")
        return {}
    if not isinstance(value, dict):
        problems.append("the json member is not a JSON object; its fields are left out")
        return {}
    return value


def _text(data: bytes | None, encoding: str | None, problems: list[str], what: str = "txt"):
    if data is None:
        return None
    try:
        return data.decode(encoding or "utf-8").strip()
    except UnicodeDecodeError as exc:
        problems.append(
            f"the {what} member is not {encoding or 'UTF-8'} text ({exc.reason} at byte"
            f" {exc.start}); left out: give the tars' encoding with --encoding"
        )
        return None
