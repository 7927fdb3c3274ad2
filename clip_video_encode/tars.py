"""Webdataset tars as input (e.g. video2dataset's output): one output shard per input tar.

Tars are read as streams (local or fsspec URL, brace patterns like
``data/{00000..00009}.tar``). Each sample's video member is copied to a scratch file whose
name is ours, never a path taken from the tar; ``txt`` becomes the caption and ``json``
fields are carried into ``KEY.json``. Input keys are kept; an input shard name is kept
when it is safe as a file name (:func:`shard_names`).
"""

from __future__ import annotations

import hashlib
import json
import os
import re
import tarfile
from collections.abc import Callable, Iterator

import fsspec

VIDEO_EXTENSIONS = ("mp4", "webm", "mkv", "mov", "avi", "m4v", "mpg", "mpeg", "ts", "flv", "3gp")
_MEMBER = re.compile(r"^((?:.*/|)[^./]+)\.([^/]*)$")  # webdataset's key/extension split
_SAFE_KEY = re.compile(r"^[A-Za-z0-9_-]+$")
_UNSAFE = re.compile(r"[^A-Za-z0-9_-]")
MAX_SHARD_NAME = 120  # bytes; with the suffixes added to it, well under 255


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


def iter_tar_samples(url: str) -> Iterator[tuple[str, dict[str, bytes]]]:
    """``(key, {extension: bytes})`` per sample, streaming, in tar order."""
    with fsspec.open(url, "rb") as f, tarfile.open(fileobj=f, mode="r|*") as tar:
        key, parts = None, {}
        for member in tar:
            if not member.isfile():
                continue
            match = _MEMBER.match(member.name)
            if not match:
                continue
            name, ext = match.groups()
            if key is not None and name != key:
                yield key, parts
                parts = {}
            key = name
            parts[ext.lower()] = tar.extractfile(member).read()
        if key is not None:
            yield key, parts


def tar_rows(
    url: str,
    scratch: str,
    keep: Callable[[int], bool] | None = None,
    encoding: str | None = None,
    name: str | None = None,
) -> Iterator[dict]:
    """Input rows of one tar. Each video is written to ``scratch`` (a folder of this tar's
    own: names are the sample's position) and named in ``fetch``; the caller deletes it once
    its video is finished. ``keep(position)``: whether a sample's video is wanted (the others
    are not written out). ``encoding``: of the ``txt`` and ``json`` members (UTF-8); text
    that does not decode is left out and the row's ``input_warning`` says so, never
    replaced by U+FFFD characters. ``name``: the output shard's name; when it is not the
    tar's own, each row keeps the original as ``source_shard``."""
    os.makedirs(scratch, exist_ok=True)
    original = shard_name(url)
    used: set[str] = set()
    for n, (key, parts) in enumerate(iter_tar_samples(url)):
        video_ext = next((e for e in VIDEO_EXTENSIONS if e in parts), None)
        problems: list[str] = []
        meta = _json(parts.get("json"), encoding, problems)
        safe_key = _unique(key if _SAFE_KEY.match(key) else _UNSAFE.sub("_", key), key, used)
        row = {
            "key": safe_key,
            "id": meta.get("key", key) if isinstance(meta.get("key"), str) else key,
            "location": f"{url}#{key}.{video_ext or '?'}",
            "caption": _text(parts.get("txt"), encoding, problems),
            "start": None,
            "end": None,
            "split": None,
            "extra": {k: v for k, v in meta.items() if isinstance(k, str)},
        }
        if safe_key != key:
            row["extra"]["source_key"] = key
        if name is not None and name != original:
            row["extra"]["source_shard"] = original
        if problems:
            row["input_warning"] = "; ".join(problems)
        if video_ext is None:
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
                f"no video member in sample {key!r} of {url} (members: {', '.join(parts)})"
            )
        elif keep is not None and not keep(n):
            row["fetch"] = ""
        else:
            path = os.path.join(scratch, f"{n}.{video_ext}")
            with open(path, "wb") as out:
                out.write(parts[video_ext])
            row["fetch"] = path
        yield row


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
