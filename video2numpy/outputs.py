"""What ``video2numpy`` writes in ``--dest``: one name per input row, and the run file.

Names come from the input (ids, file names, YouTube ids), so they are made safe before they
become paths, and unique over the whole input, compared without case (macOS and Windows
folders are case-insensitive). A name is a pure function of the input, so a rerun of the same
input finds its outputs again; the original location stays in each ``NAME.json``.

The run file (``run.json``, like clip-video-encode's) records the options that decide the
bytes written and the input's identity, and lists the names written. A rerun with other
settings or another input is refused instead of mixing two runs in one folder; ``--overwrite``
removes the listed outputs, and only those, and starts again.
"""

from __future__ import annotations

import dataclasses
import hashlib
import json
import os
import re
import unicodedata
from collections import Counter
from collections.abc import Sequence
from urllib.parse import unquote, urlsplit

from .jsonsafe import dumps
from .versions import package_versions
from .youtube import parse_youtube_id

RUN_FILE = "run.json"
TOOL = "video2numpy"
# Every file a name gives: the finished outputs and their temporary copies.
SUFFIXES = (".npy", ".json", ".npy.partial", ".json.partial")
# A base name's bytes: with "_<row>_<n>" and ".json.partial" it stays far under the 255 bytes
# that ext4, XFS, APFS and NTFS allow in one name.
_MAX_BASE = 180
_UNSAFE = re.compile(r"[^A-Za-z0-9._-]+")
_SAFE = re.compile(r"^[A-Za-z0-9_-][A-Za-z0-9._-]{0,254}$")
# Names Windows reserves for devices, with any extension (a destination on an SMB share).
_DEVICES = {"CON", "PRN", "AUX", "NUL"} | {f"{p}{i}" for p in ("COM", "LPT") for i in range(10)}
# Settings that change the bytes written: a rerun into the same destination must match them.
# The backend is recorded but not binding: both decoders give the same frames (tests/test_decode).
_BINDING = ("sampling", "resize", "columns")


class RunMismatch(Exception):
    """The destination holds outputs of another run: other settings, input or tool."""


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


def run_settings(src: str, rows: Sequence[dict], names: Sequence[str], options, columns) -> dict:
    """What ``run.json`` holds. ``options``: the FrameOptions; ``columns``: the table
    columns read (they decide the rows and what each record carries)."""
    return {
        "tool": TOOL,
        "input": src,
        "rows": len(rows),
        "input_sha256": input_digest(rows),
        "sampling": dataclasses.asdict(options.sampling),
        "resize": dataclasses.asdict(options.resize),
        "backend": options.backend,
        "columns": dict(columns),
        "versions": _versions(),
        "names": list(names),
    }


def input_digest(rows: Sequence[dict]) -> str:
    """The content hash of the rows as read: location, id, window and the copied columns."""
    h = hashlib.sha256()
    for row in rows:
        fields = [row.get(k) for k in ("location", "id", "start", "end")] + [row.get("meta")]
        h.update(dumps(fields, sort_keys=True, ensure_ascii=False).encode("utf-8"))
        h.update(b"\n")
    return h.hexdigest()


def prepare_run(dest: str, settings: dict, overwrite: bool) -> None:
    """Check ``dest`` against ``settings`` and write the run file; raises :class:`RunMismatch`
    with one line that says what differs and what to do. With ``overwrite``, the outputs the
    previous run file lists are removed first (before the new run file replaces it, so a
    crash midway leaves them listed)."""
    path = os.path.join(dest, RUN_FILE)
    previous = _read_run(path)
    if previous is None:
        existing = _existing_outputs(dest, settings["names"])
        if existing and not overwrite:
            more = f" (and {len(existing) - 1} more)" if len(existing) > 1 else ""
            raise RunMismatch(
                f"{dest} already holds {existing[0]}{more} under this input's output names"
                f" but no {RUN_FILE}: written by a video2numpy that did not record its"
                " settings, or by something else. Use another --dest, or add --overwrite to"
                " replace them."
            )
    else:
        problem = _mismatch(previous, settings)
        if problem and not overwrite:
            raise RunMismatch(
                f"{dest} holds a video2numpy run {problem}. Rerun with the same settings and"
                " input to resume it, use another --dest, or add --overwrite to remove that"
                " run's outputs and start again."
            )
        if overwrite:
            remove_outputs(dest, previous.get("names") or [])
    _write_json(path, settings)


def remove_outputs(dest: str, names: Sequence) -> None:
    """Remove the files of ``names`` (a run file's list): only names this module could have
    made, so a run file edited to list ``../x`` removes nothing outside ``dest``."""
    for name in names:
        if not isinstance(name, str) or not _SAFE.match(name) or name.strip(".") == "":
            continue
        for suffix in SUFFIXES:
            try:
                os.remove(os.path.join(dest, name + suffix))
            except FileNotFoundError:
                pass


def _read_run(path: str) -> dict | None:
    try:
        with open(path, encoding="utf-8") as f:
            previous = json.load(f)
    except FileNotFoundError:
        return None
    except (OSError, ValueError) as exc:
        raise RunMismatch(
            f"{path} is not a video2numpy run file ({exc}): use another --dest"
        ) from exc
    if not isinstance(previous, dict) or previous.get("tool") != TOOL:
        raise RunMismatch(
            f"{path} is not a video2numpy run file (another tool's destination?): use another"
            " --dest"
        )
    return previous


def _mismatch(previous: dict, settings: dict) -> str | None:
    """How the recorded run differs from this one, worded for the message; None if not."""
    diff = []
    for key in _BINDING:
        diff += _differences(key, previous.get(key), settings[key])
    if diff:
        return f"with other settings ({'; '.join(diff)})"
    if previous.get("rows") != settings["rows"]:
        return f"of another input ({previous.get('rows')} rows there, {settings['rows']} now)"
    if previous.get("input_sha256") != settings["input_sha256"]:
        return "of another input (same number of rows, different content)"
    if previous.get("names") != settings["names"]:
        return "whose outputs were named by another version of video2numpy"
    return None


def _differences(key: str, old, new) -> list[str]:
    """``key.sub: old there, new now`` for each leaf that differs, nested dicts flattened."""
    if isinstance(old, dict) and isinstance(new, dict):
        out = []
        for sub in sorted(set(old) | set(new)):
            out += _differences(f"{key}.{sub}", old.get(sub), new.get(sub))
        return out
    same = json.dumps(old, sort_keys=True) == json.dumps(_plain(new), sort_keys=True)
    return [] if same else [f"{key}: {old!r} there, {new!r} now"]


def _plain(value):
    return json.loads(dumps(value))


def _existing_outputs(dest: str, names: Sequence[str]) -> list[str]:
    """Files in ``dest`` that this input's outputs would replace, compared without case."""
    try:
        present = {entry.lower(): entry for entry in os.listdir(dest)}
    except FileNotFoundError:
        return []
    found = []
    for name in names:
        for suffix in (".json", ".npy"):
            entry = present.get((name + suffix).lower())
            if entry is not None:
                found.append(entry)
    return found


def _write_json(path: str, value: dict) -> None:
    tmp = path + ".partial"
    with open(tmp, "w", encoding="utf-8") as f:
        f.write(dumps(value, ensure_ascii=False, indent=1))
    os.replace(tmp, path)


def _versions() -> dict:
    return package_versions("clip-video-datasets", "av", "decord", "numpy")


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
