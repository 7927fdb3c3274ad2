"""Per-dataset converters: official annotation files -> the input table (DESIGN.md section 2).

Each dataset is one module in this package that decorates its function with :func:`register`;
modules are found by name, so adding a dataset is adding one file.
"""

from __future__ import annotations

import importlib
import pkgutil
from collections.abc import Callable, Iterable, Iterator
from dataclasses import dataclass, field

import pyarrow as pa

from .core import ConvertError, Locator, Report, VideoRoot, normalise_split
from .ids import IdLedger
from .output import to_table

__all__ = ["ConvertError", "Converter", "Report", "convert", "convert_rows", "converters",
           "register"]  # fmt: skip


@dataclass(frozen=True)
class ConvertOptions:
    split: str | None = None  # the split of rows whose files do not say (and a filter)
    encoding: str = "utf-8"


@dataclass(frozen=True)
class Converter:
    name: str
    title: str
    files: str  # which annotation files it reads, as a user would name them
    function: Callable[[list[str], ConvertOptions, Report], Iterable[dict]]
    types: dict = field(default_factory=dict)  # arrow types of its own columns, where known
    captions: bool = True  # whether its files hold captions (else no note when none has one)


_REGISTRY: dict[str, Converter] = {}


def register(name: str, title: str, files: str, types: dict | None = None, captions: bool = True):
    """Decorator: make ``function(paths, options, report) -> rows`` the converter ``name``
    (rows: an iterable of dicts, each with the same fields; a generator keeps big files
    streaming)."""

    def add(function):
        _REGISTRY[name] = Converter(name, title, files, function, dict(types or {}), captions)
        return function

    return add


def converters() -> dict[str, Converter]:
    """Every converter, by name (importing the dataset modules on first use)."""
    if not _REGISTRY:
        for module in pkgutil.iter_modules(__path__):
            if module.name not in ("core", "cli", "output", "text", "ids"):
                importlib.import_module(f"{__name__}.{module.name}")
    return dict(sorted(_REGISTRY.items()))


def convert_rows(
    dataset: str,
    paths: list[str],
    report: Report,
    split: str | None = None,
    video_root: str | None = None,
    encoding: str = "utf-8",
    drop_missing: bool = False,
    strict: bool = False,
) -> Iterator[dict]:
    """The input table's rows for ``dataset``, streamed from its annotation files; what was
    noticed goes into ``report`` once the rows are consumed. Bad lines are left out and
    counted (``report.skip``), or stop the conversion when ``strict``; ids are made unique
    (:class:`converters.ids.IdLedger`)."""
    known = converters()
    if dataset not in known:
        raise ValueError(f"unknown dataset {dataset!r}; supported: {', '.join(known)}")
    if not paths:
        raise ValueError(f"{dataset} needs its annotation files: {known[dataset].files}")
    split = normalise_split(split)
    report.strict = strict
    locator = Locator(VideoRoot(video_root) if video_root else None, drop_missing)
    rows = known[dataset].function(list(paths), ConvertOptions(split, encoding), report)
    counts = {"total": 0, "kept": 0}

    def in_split(rows):
        for row in rows:
            counts["total"] += 1
            if split is not None:
                if row.get("split") not in (None, split):
                    continue
                row["split"] = split
            counts["kept"] += 1
            yield row

    captioned = 0
    for row in IdLedger(report, strict).unique(in_split(rows)):
        source = row.get("_where")
        if not str(row.get("id") or "").strip():
            raise ValueError(f"{source}: a row without an id")
        row = locator.place(row)
        if row is None:
            continue
        if not row.get("location"):
            raise ValueError(
                f"{source}: row {row['id']} has no location: these annotations hold no URL for"
                " it; give --video-root with the downloaded videos (and --drop-missing to leave"
                " out those not there)"
            )
        report.rows += 1
        captioned += row.get("caption") is not None
        yield row
    total, kept = counts["total"], counts["kept"]
    if not total and report.left_out():
        examples = "; ".join(e for _, found in report.skipped.values() for e in found)
        raise ValueError(f"no rows: all {report.left_out()} lines were left out ({examples})")
    report.summarise()
    if split is not None and kept < total:
        report.note(f"--split {split}: kept {kept} of {total} rows")
    locator.note(report)
    if report.rows and not captioned and known[dataset].captions:
        # Say so: a garbled or renamed field gives this, and a table of empty captions.
        report.note(f"none of the {report.rows} rows has a caption: check that the files are"
                    f" {dataset}'s ({known[dataset].files})")  # fmt: skip


def convert(
    dataset: str,
    paths: list[str],
    split: str | None = None,
    video_root: str | None = None,
    encoding: str = "utf-8",
    drop_missing: bool = False,
    strict: bool = False,
) -> tuple[pa.Table, Report]:
    """The input table for ``dataset`` from its annotation files, and what was noticed."""
    report = Report()
    rows = list(
        convert_rows(dataset, paths, report, split, video_root, encoding, drop_missing, strict)
    )
    return to_table(rows, converters()[dataset].types), report
