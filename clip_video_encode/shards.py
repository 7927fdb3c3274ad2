"""The input table split into stable shards, with video2dataset's key scheme.

Shard ids come from row order alone, so the same input always gives the same shards and keys,
which is what lets a rerun skip finished shards and redo the rest.
"""

from __future__ import annotations

import math
from dataclasses import dataclass, field

import pyarrow as pa


@dataclass(frozen=True)
class Columns:
    """Which input columns mean what (DESIGN.md section 2)."""

    location: str = "location"
    caption: str | None = "caption"
    id: str | None = "id"
    start: str | None = "start"
    end: str | None = "end"
    split: str | None = "split"
    save: tuple[str, ...] = ()  # further columns copied into KEY.json


@dataclass
class Shard:
    shard_id: int
    name: str  # "00001": the tar is 00001.tar
    rows: list[dict] = field(default_factory=list)  # each with "key", "location", ...
    tar: str | None = None  # an input tar: its rows are known only while it is read


def key_digits(samples_per_shard: int, shard_count: int) -> tuple[int, int]:
    """(shard digits, sample digits): at least 5 for shards, and room for every index."""
    return max(5, math.ceil(math.log10(max(shard_count, 1) + 1))), len(str(samples_per_shard))


def make_key(shard_id: int, index: int, samples_per_shard: int, shard_count: int) -> str:
    """``shard_id * 10**oom_sample + index``, zero padded: shard 1, index 5, 1000 per shard
    gives ``000010005``."""
    shard_digits, sample_digits = key_digits(samples_per_shard, shard_count)
    return f"{shard_id:0{shard_digits}d}{index:0{sample_digits}d}"


def plan_shards(table: pa.Table, columns: Columns, samples_per_shard: int) -> list[Shard]:
    """Split ``table`` into shards of ``samples_per_shard`` consecutive rows."""
    if samples_per_shard < 1:
        raise ValueError("samples_per_shard must be at least 1")
    missing = [c for c in [columns.location, *columns.save] if c not in table.column_names]
    if missing:
        raise ValueError(
            f"the input has no column {missing[0]!r}; its columns are:"
            f" {', '.join(table.column_names)}"
        )
    wanted = {
        "location": columns.location,
        "caption": columns.caption,
        "id": columns.id,
        "start": columns.start,
        "end": columns.end,
        "split": columns.split,
    }
    data = {k: table.column(c).to_pylist() for k, c in wanted.items() if c in table.column_names}
    saved = {c: table.column(c).to_pylist() for c in columns.save}
    shard_count = math.ceil(table.num_rows / samples_per_shard)
    shard_digits, _ = key_digits(samples_per_shard, shard_count)
    shards = [Shard(s, f"{s:0{shard_digits}d}") for s in range(shard_count)]
    for row in range(table.num_rows):
        shard_id, index = divmod(row, samples_per_shard)
        record = {k: data[k][row] if k in data else None for k in wanted}
        record["location"] = str(record["location"] or "").strip()
        record["key"] = make_key(shard_id, index, samples_per_shard, shard_count)
        record["extra"] = {c: saved[c][row] for c in columns.save}
        shards[shard_id].rows.append(record)
    return shards
