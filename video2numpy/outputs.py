"""What ``video2numpy`` writes in ``--dest``: one safe, unique name per input row.

Names come from the input (ids, file names, YouTube ids), so they are made safe before they
become paths, and unique over the whole input, compared without case (macOS and Windows
folders are case-insensitive). A name is a pure function of the input, so a rerun of the same
input finds its outputs again; the original location stays in each ``NAME.json``.
"""

from __future__ import annotations

import os
import re
import unicodedata
from collections import Counter
from collections.abc import Sequence
from urllib.parse import unquote, urlsplit

from .youtube import parse_youtube_id

RUN_FILE = "run.json"  # the destination's record of its run: never an output's name
# Every file a name gives: the finished outputs and their temporary copies.
SUFFIXES = (".npy", ".json", ".npy.partial", ".json.partial")
# A base name's bytes: with "_<row>_<n>" and ".json.partial" it stays far under the 255 bytes
# that ext4, XFS, APFS and NTFS allow in one name.
_MAX_BASE = 180
_UNSAFE = re.compile(r"[^A-Za-z0-9._-]+")
# Names Windows reserves for devices, with any extension (a destination on an SMB share).
_DEVICES = {"CON", "PRN", "AUX", "NUL"} | {f"{p}{i}" for p in ("COM", "LPT") for i in range(10)}


def base_name(row: dict) -> str:
    """A readable, safe name for one row: its id, else its YouTube id, else its file name
    without the extension (a URL's path, not its query). Accents are kept as their letters;
    whatever is not ``[A-Za-z0-9._-]`` becomes ``_``; leading and trailing dots go (no
    ``.``, ``..`` or hidden files); Windows device names get a ``_``."""
    ident = row.get("id")
    location = str(row.get("location") or "")
    text = str(ident) if ident else parse_youtube_id(location) or _stem(location)
    text = unicodedata.normalize("NFKD", text).encode("ascii", "ignore").decode("ascii")
    text = _UNSAFE.sub("_", text).strip("._")[:_MAX_BASE].rstrip(".") or "video"
    head, dot, rest = text.partition(".")
    if head.upper() in _DEVICES:  # CON.0 is the device too: CON_.0 is not
        text = f"{head}_{dot}{rest}"
    return text


def output_names(rows: Sequence[dict]) -> list[str]:
    """One safe name per row, unique over all rows whatever the case, never the run file's.

    A row keeps its base name when no other row's base name equals it (without case); rows
    that share one get ``_<row number>`` (and ``_<n>`` if that too is some row's name). Every
    base name is reserved first, so a suffixed name never takes another row's own name."""
    bases = [base_name(row) for row in rows]
    counts = Counter(b.lower() for b in bases)
    taken = set(counts) | {RUN_FILE.removesuffix(".json")}
    names = []
    for i, base in enumerate(bases):
        key = base.lower()
        if counts[key] == 1 and key != RUN_FILE.removesuffix(".json"):
            names.append(base)
            continue
        name, n = f"{base}_{i}", 0
        while name.lower() in taken:
            n += 1
            name = f"{base}_{i}_{n}"
        taken.add(name.lower())
        names.append(name)
    return names


def _stem(location: str) -> str:
    """A location's file name without its extension: the last part of a local path (``/``
    or ``\\``), or of a URL's unquoted path (the host when the path has none)."""
    if "://" in location:
        try:
            url = urlsplit(location)
        except ValueError:  # not a URL after all: taken as a path
            url = None
        if url is not None:
            location = unquote(url.path)
            if not location.strip("/\\"):
                return url.hostname or ""
    leaf = re.split(r"[/\\]", location.rstrip("/\\"))[-1]
    return os.path.splitext(leaf)[0] if leaf.strip(".") else leaf
