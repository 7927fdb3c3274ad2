"""What every converter shares: the output rows, YouTube URLs, clip keys and finding
already-downloaded videos (reading the annotation files is :mod:`converters.text`).

A converter turns a dataset's official annotation files into rows of the input table of
DESIGN.md section 2: ``id``, ``location``, ``caption``, ``start``, ``end``, ``split`` and the
dataset's own extra columns. Rows are plain dicts; :func:`to_table` gives them one schema.
"""

from __future__ import annotations

import math
import os
import re
from dataclasses import dataclass, field

VIDEO_SUFFIXES = (".mp4", ".webm", ".mkv", ".avi", ".mov", ".m4v", ".flv")
# Column order of every output table; a dataset's extra columns follow, in first-seen order.
COLUMNS = ("id", "location", "caption", "start", "end", "split")
SPLITS = {
    "train": "train",
    "training": "train",
    "val": "val",
    "valid": "val",
    "validate": "val",
    "validation": "val",
    "test": "test",
    "testing": "test",
}


class ConvertError(ValueError):
    """An annotation file is not in the format its dataset uses; says where and why."""

    def __init__(self, path: str, message: str, line: int | None = None) -> None:
        where = f"{path}:{line}" if line is not None else path
        super().__init__(f"{where}: {message}")


EXAMPLES = 3  # bad lines named in a warning; the rest are counted


@dataclass
class Report:
    """What a conversion did besides writing rows, for the CLI's summary.

    Real annotation files have a few bad lines (Charades-STA's train file has three moments
    that end before they start): :meth:`skip` leaves such a line out, counted, the first few
    named in a note, so that the rest of the file converts; with ``strict`` it stops there."""

    rows: int = 0
    notes: list[str] = field(default_factory=list)
    strict: bool = False
    skipped: dict[str, tuple[int, list[str]]] = field(default_factory=dict)

    def note(self, message: str) -> None:
        self.notes.append(message)

    def skip(
        self, path: str, line: int | None, message: str, what: str = "lines with an invalid window"
    ) -> None:
        """Leave out one line (or entry) of ``path``: ``message`` says why. Raises
        ConvertError instead when ``strict``."""
        if self.strict:
            raise ConvertError(path, f"{message} (--strict; without it such {what} are left out"
                               " with a warning)", line)  # fmt: skip
        self.tally(where(path, line), message, f"{what} left out")

    def tally(self, place: str | None, message: str, what: str) -> None:
        """Count one row or line under ``what`` (the note's wording), naming it among the
        first few."""
        count, examples = self.skipped.get(what, (0, []))
        if len(examples) < EXAMPLES:
            examples.append(f"{place}: {message}" if place else message)
        self.skipped[what] = (count + 1, examples)

    def left_out(self) -> int:
        return sum(count for count, _ in self.skipped.values())

    def summarise(self) -> None:
        """A note per kind of row left out or changed: how many, and the first few."""
        for what, (count, examples) in self.skipped.items():
            more = f"; and {count - len(examples)} more" if count > len(examples) else ""
            strict = " --strict stops at the first instead" if "window" in what else ""
            self.note(f"{count} {what} ({'; '.join(examples)}{more});{strict}".rstrip(";"))
        self.skipped = {}


def where(path: str, line: int | None) -> str:
    """``path:line``, or the path alone when the line is not known: how a row's source is
    named in notes and errors (a row carries it as ``_where``)."""
    return f"{path}:{line}" if line else path


def text_of(value) -> str | None:
    """A cell as text, surrounding space removed; None when empty or missing (a number is
    written as text; JSON ``null`` is no text, not ``"None"``)."""
    if value is None or isinstance(value, bool):
        return None
    return str(value).strip() or None


def youtube_url(youtube_id: str) -> str:
    return f"https://www.youtube.com/watch?v={youtube_id}"


def clip_key(youtube_id: str, start: float, end: float) -> str:
    """The name Kinetics' and VATEX's downloaders give a clip: ``<id>_<start>_<end>`` with
    whole seconds zero padded to 6 digits. A window of fractional seconds keeps its fraction
    (``_000010.2_000020.7``): the downloaders' name (``_000010_000020``) is another clip's,
    and the row must not take that clip's file."""
    return f"{youtube_id}_{_key_seconds(start)}_{_key_seconds(end)}"


def _key_seconds(value: float) -> str:
    """Seconds as in a clip key: ``000010``, or ``000010.2`` (to the microsecond)."""
    whole, _, fraction = f"{value:.6f}".rstrip("0").rstrip(".").partition(".")
    return f"{int(whole):06d}" + (f".{fraction}" if fraction else "")


_KEY_NUMBER = re.compile(r"\d+(\.\d+)?")


def split_clip_key(key: str) -> tuple[str, float, float]:
    """``(youtube_id, start, end)`` of a clip key (whole seconds as ints); split from the
    right, since YouTube ids themselves may contain ``_`` (and start with ``-``)."""
    parts = key.rsplit("_", 2)
    if len(parts) != 3 or not parts[0] or not all(_KEY_NUMBER.fullmatch(p) for p in parts[1:]):
        raise ValueError(f"{key!r} is not <youtube id>_<start>_<end>")
    start, end = (float(p) if "." in p else int(p) for p in parts[1:])
    return parts[0], start, end


def normalise_split(value: str | None) -> str | None:
    """``train`` / ``val`` / ``test`` for the names datasets use; other names are kept."""
    if value is None or str(value).strip() == "":
        return None
    value = str(value).strip()
    return SPLITS.get(value.lower(), value)


def split_from_filename(path: str) -> str | None:
    """The split a file's name says (``..._train.csv``, ``vatex_validation_v1.0.json``)."""
    words = re.split(r"[^a-z]+", os.path.basename(path).lower())
    found = {SPLITS[w] for w in words if w in SPLITS}
    return found.pop() if len(found) == 1 else None


def iso_duration(text: str) -> float:
    """Seconds of an ISO-8601 duration such as WebVid's ``PT00H00M17S`` (or ``PT1M2.5S``)."""
    match = re.fullmatch(
        r"P(?:(\d+)D)?T?(?:(\d+(?:\.\d+)?)H)?(?:(\d+(?:\.\d+)?)M)?(?:(\d+(?:\.\d+)?)S)?",
        text.strip(),
    )
    if not match or text.strip() in ("P", "PT"):
        raise ValueError(f"{text!r} is not an ISO-8601 duration like PT00H00M17S")
    days, hours, minutes, seconds = (float(g) if g else 0.0 for g in match.groups())
    return days * 86400 + hours * 3600 + minutes * 60 + seconds


def expect(condition: bool, path: str, message: str, line: int | None = None) -> None:
    if not condition:
        raise ConvertError(path, message, line)


class VideoRoot:
    """Already-downloaded videos under a folder, found by file name without suffix: a clip
    file (``<id>_<start>_<end>.mp4``, Kinetics and VATEX style, possibly in per-label folders)
    or a whole-video file (``<id>.mp4``)."""

    def __init__(self, root: str) -> None:
        if not os.path.isdir(root):
            raise FileNotFoundError(f"--video-root {root} is not a folder")
        self.root = root
        self._by_stem: dict[str, str] = {}
        for folder, _, files in sorted(os.walk(root)):
            for name in sorted(files):
                stem, suffix = os.path.splitext(name)
                if suffix.lower() in VIDEO_SUFFIXES:
                    self._by_stem.setdefault(stem, os.path.join(folder, name))

    def __len__(self) -> int:
        return len(self._by_stem)

    def find(self, *stems: str) -> tuple[str | None, str | None]:
        """The path of the first of ``stems`` present, and which stem matched."""
        for stem in stems:
            if stem and stem in self._by_stem:
                return self._by_stem[stem], stem
        return None, None


class Locator:
    """Points rows at local files under ``root``, one row at a time. A row carries its
    candidate names in ``_clip_file`` (a file that is already the clip: the window is then
    the whole file, and the original window is kept as ``clip_start``/``clip_end``) and
    ``_video_file`` (the whole video, one name or a list: the window stays)."""

    def __init__(self, root: VideoRoot | None, drop_missing: bool) -> None:
        self.root, self.drop_missing = root, drop_missing
        self.seen = self.missing = 0

    def place(self, row: dict) -> dict | None:
        """The row as written, or None when it is dropped (no file, ``--drop-missing``)."""
        if self.root is None:
            return _strip_private(row)
        self.seen += 1
        clip, videos = row.get("_clip_file"), row.get("_video_file") or []
        videos = [videos] if isinstance(videos, str) else list(videos)
        path, stem = self.root.find(clip, *videos)
        row.setdefault("clip_start", None)  # every row has the columns (a streamed schema)
        row.setdefault("clip_end", None)
        if path is None:
            self.missing += 1
            if self.drop_missing:
                return None
        else:
            row["location"] = path
            if stem == clip and clip not in videos:
                row["clip_start"], row["clip_end"] = row.get("start"), row.get("end")
                row["start"] = row["end"] = None
        return _strip_private(row)

    def note(self, report: Report) -> None:
        if self.missing:
            what = "dropped" if self.drop_missing else "kept with their remote location"
            report.note(f"{self.missing} of {self.seen} rows have no video under"
                        f" {self.root.root}: {what}")  # fmt: skip


def _strip_private(row: dict) -> dict:
    return {k: v for k, v in row.items() if not k.startswith("_")}


# Longer than any video (about 116 days): such a time is a broken cell (milliseconds, an
# epoch timestamp), and would make ids and clip names of hundreds of digits.
MAX_SECONDS = 1e7


def seconds(value, what: str = "time") -> float:
    """A time in seconds from a cell (a number or its text): finite, not negative and at most
    ``MAX_SECONDS``; else ValueError saying which value is wrong and how."""
    if isinstance(value, str):
        value = value.strip()
    if value is None or isinstance(value, bool) or value == "":
        raise ValueError(f"{what} is missing")
    try:
        number = float(value)
    except (TypeError, ValueError, OverflowError):
        raise ValueError(f"{what} {value!r} is not a number of seconds") from None
    if not math.isfinite(number) or not 0 <= number <= MAX_SECONDS:
        raise ValueError(f"{what} {value!r} is not a time (seconds, from 0 to {MAX_SECONDS:.0e})")
    return number


def finite(value, what: str = "value") -> float | None:
    """A number cell: None when empty or missing, else a finite float; ValueError saying
    which value when it is not one (the table holds no NaN or infinity)."""
    if isinstance(value, str):
        value = value.strip()
    if value is None or value == "":
        return None
    try:
        number = float(value)
    except (TypeError, ValueError, OverflowError):
        number = math.nan
    if isinstance(value, bool) or not math.isfinite(number):
        raise ValueError(f"{what} {value!r} is not a number")
    return number


def check_window(start: float, end: float) -> tuple[float, float]:
    """``(start, end)`` when the window is not empty; else ValueError saying so."""
    if end < start:
        raise ValueError(f"the window ends before it starts ({start:g} - {end:g})")
    if end == start:
        raise ValueError(f"the window is empty ({start:g} - {end:g})")
    return start, end


def window(start, end, names: tuple[str, str] = ("start", "end")) -> tuple[float, float]:
    """A clip window from two cells: both :func:`seconds`, and ``end`` after ``start``."""
    return check_window(seconds(start, names[0]), seconds(end, names[1]))


def clock_seconds(text) -> float:
    """Seconds of a clock time: ``H:MM:SS.mmm``, ``MM:SS.mmm`` or plain seconds (each part a
    number, not negative; the total as :func:`seconds` allows)."""
    value = 0.0
    parts = str(text).strip().split(":")
    if not 1 <= len(parts) <= 3 or not all(p.strip() for p in parts):
        raise ValueError(f"{text!r} is not a time like 0:00:05.105")
    for part in parts:
        try:
            number = float(part)
        except ValueError:
            raise ValueError(f"{text!r} is not a time like 0:00:05.105") from None
        if not math.isfinite(number) or number < 0:
            raise ValueError(f"{text!r} is not a time like 0:00:05.105")
        value = value * 60 + number
    if value > MAX_SECONDS:
        raise ValueError(f"{text!r} is not a time (at most {MAX_SECONDS:.0e} seconds)")
    return value


def literal(cell: str):
    """A Python literal written into a csv cell (``"[['0:00:00.000', '0:00:05.105'], ...]"``),
    parsed safely: ``ast.literal_eval`` reads literals only, never runs code."""
    import ast

    try:
        return ast.literal_eval(cell.strip()) if cell and cell.strip() else None
    except (ValueError, SyntaxError, MemoryError, RecursionError) as exc:
        raise ValueError(f"not a Python literal list: {str(exc).splitlines()[0]}") from None


def clip_window(name: str) -> tuple[str, float, float]:
    """``(video id, start, end)`` of ``<id>_<start>_<end>`` with numbers that may have a
    fractional part (QVHighlights' ``vid``); split from the right (ids hold ``_``)."""
    parts = name.rsplit("_", 2)
    try:
        if len(parts) == 3 and parts[0]:
            return parts[0], float(parts[1]), float(parts[2])
    except ValueError:
        pass
    raise ValueError(f"{name!r} is not <video id>_<start>_<end>")
