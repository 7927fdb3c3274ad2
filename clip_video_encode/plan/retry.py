"""``--retry-failed``: do again only the rows of committed shards that failed for a reason
that may pass (a fetch that failed, a timeout), and leave every other row as it is.

A shard with rows to retry is rewritten whole: its other samples are copied member by member,
byte for byte, from the committed tar (or folder), and the parquet keeps their rows as they
were. The rewritten tar and parquet are written under ``.partial`` names while the committed
shard stays in place; the commit then un-commits the old shard (its marker first), renames
the new files and writes the new marker last. A run killed in that last short window leaves
the shard uncommitted, and the next run redoes it whole: the dataset is never inconsistent.
"""

from __future__ import annotations

from collections.abc import Iterator
from dataclasses import dataclass

import pyarrow.parquet as pq

from video2numpy.status import FAILED_TO_FETCH, TIMEOUT

from .tars import iter_tar_samples

# Failures that a second try may not repeat: the network, a server, a slow worker.
RETRYABLE = frozenset({FAILED_TO_FETCH, TIMEOUT})


@dataclass(frozen=True)
class Redo:
    """A committed shard, and the positions of its rows to do again."""

    positions: frozenset[int]
    parquet: str
    data: str  # its tar, or its folder (``--output-format files``)
    json_fields: dict  # the json fields its samples from an input tar have (their types)


def plan_retries(fs, dest: str, committed: list[dict], statuses: frozenset[str]) -> dict[str, Redo]:
    """The committed shards holding rows with one of ``statuses``, by name. Only the status
    column of those shards' parquets is read (the markers' counts say which shards)."""
    plans = {}
    for stats in committed:
        if not set(stats.get("status_dict", {})) & statuses:
            continue
        name = stats["shard"]
        parquet = f"{dest}/{name}.parquet"
        with fs.open(parquet, "rb") as f:
            column = pq.read_table(f, columns=["status"]).column("status").to_pylist()
        positions = frozenset(i for i, s in enumerate(column) if s in statuses)
        if positions:
            plans[name] = Redo(positions, parquet, stats["_data"], stats.get("json_fields", {}))
    return plans


def committed_samples(fs, redo: Redo) -> Iterator[tuple[dict, dict[str, bytes]]]:
    """The committed shard's rows in order, as ``(parquet row, {extension: bytes})``: the
    members exactly as they are stored."""
    with fs.open(redo.parquet, "rb") as f:
        rows = pq.read_table(f).to_pylist()
    if redo.data.endswith(".tar"):
        members = iter_tar_samples(fs.unstrip_protocol(redo.data))
        for row, (key, parts) in zip(rows, members, strict=True):
            if key != row["key"]:
                raise ValueError(f"{redo.data}: sample {key!r}, the parquet has {row['key']!r}")
            yield row, parts
        return
    present = set(fs.ls(redo.data, detail=False))
    for row in rows:  # a folder of KEY.ext files
        parts = {}
        for ext in ("npy", "txt", "json"):
            path = f"{redo.data}/{row['key']}.{ext}"
            if path in present:
                parts[ext] = fs.cat_file(path)
        yield row, parts
