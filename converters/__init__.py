"""Per-dataset converters: official annotation files -> the input table (DESIGN.md section 2).

Each dataset is one module in this package that decorates its function with :func:`register`;
modules are found by name, so adding a dataset is adding one file.
"""

from __future__ import annotations

import importlib
import pkgutil
from collections.abc import Callable
from dataclasses import dataclass

import pyarrow as pa

from .core import ConvertError, Report, VideoRoot, locate, normalise_split, to_table

__all__ = ["ConvertError", "Converter", "Report", "convert", "converters", "register"]


@dataclass(frozen=True)
class ConvertOptions:
    split: str | None = None  # the split of rows whose files do not say (and a filter)
    encoding: str = "utf-8"


@dataclass(frozen=True)
class Converter:
    name: str
    title: str
    files: str  # which annotation files it reads, as a user would name them
    function: Callable[[list[str], ConvertOptions, Report], list[dict]]


_REGISTRY: dict[str, Converter] = {}


def register(name: str, title: str, files: str):
    """Decorator: make ``function(paths, options, report) -> rows`` the converter ``name``."""

    def add(function):
        _REGISTRY[name] = Converter(name, title, files, function)
        return function

    return add


def converters() -> dict[str, Converter]:
    """Every converter, by name (importing the dataset modules on first use)."""
    if not _REGISTRY:
        for module in pkgutil.iter_modules(__path__):
            if module.name not in ("core", "cli"):
                importlib.import_module(f"{__name__}.{module.name}")
    return dict(sorted(_REGISTRY.items()))


def convert(
    dataset: str,
    paths: list[str],
    split: str | None = None,
    video_root: str | None = None,
    encoding: str = "utf-8",
    drop_missing: bool = False,
) -> tuple[pa.Table, Report]:
    """The input table for ``dataset`` from its annotation files, and what was noticed."""
    known = converters()
    if dataset not in known:
        raise ValueError(f"unknown dataset {dataset!r}; supported: {', '.join(known)}")
    if not paths:
        raise ValueError(f"{dataset} needs its annotation files: {known[dataset].files}")
    report = Report()
    split = normalise_split(split)
    rows = known[dataset].function(list(paths), ConvertOptions(split, encoding), report)
    if split is not None:
        kept = [r for r in rows if r.get("split") in (None, split)]
        if len(kept) < len(rows):
            report.note(f"--split {split}: kept {len(kept)} of {len(rows)} rows")
        rows = [{**r, "split": split} for r in kept]
    root = VideoRoot(video_root) if video_root else None
    rows = locate(rows, root, report, drop_missing)
    nowhere = [r["id"] for r in rows if not r.get("location")]
    if nowhere:
        raise ValueError(
            f"{len(nowhere)} rows have no location (first: {nowhere[0]}): these annotations"
            " hold no URL for them; give --video-root with the downloaded videos (and"
            " --drop-missing to leave out those not there)"
        )
    report.rows = len(rows)
    return to_table(rows), report
