"""The command-line options that say which input columns mean what, shared by the commands
that read a table of videos (``clip-video-encode``, ``clip-video-caption``), so that one
table is read alike by both."""

from __future__ import annotations

import argparse

from .shards import Columns

_MEANINGS = {
    "location": "video paths or URLs",
    "caption": "captions",
    "id": "ids, used in names",
    "start": "each row's window start in seconds",
    "end": "each row's window end in seconds",
    "split": "each row's split",
}


def add_column_options(group, save: bool = False) -> None:
    """``--location-col`` ... ``--split-col`` (and ``--save-columns``); ``none`` (or an empty
    name) for an optional column means the table has no such column."""
    for name, meaning in _MEANINGS.items():
        optional = "" if name == "location" else ", if present; none: ignore it"
        group.add_argument(f"--{name}-col", default=name, help=f"column of {meaning} ({name}"
                           f"{optional})")  # fmt: skip
    if save:
        group.add_argument(
            "--save-columns", default="", help="comma-separated columns copied into KEY.json"
        )


def columns_from_options(args: argparse.Namespace) -> Columns:
    return Columns(
        location=args.location_col,
        caption=_optional(args.caption_col),
        id=_optional(args.id_col),
        start=_optional(args.start_col),
        end=_optional(args.end_col),
        split=_optional(args.split_col),
        save=tuple(c for c in getattr(args, "save_columns", "").split(",") if c),
    )


def _optional(name: str | None) -> str | None:
    return None if name in (None, "", "none") else name
