"""The input table split into stable shards, with video2dataset's key scheme.

Shard ids come from row order alone, so the same input always gives the same shards and keys,
which is what lets a rerun skip finished shards and redo the rest. A shard holds a zero-copy
slice of the table, and its rows become Python dicts only while the shard is being encoded:
planning a table of millions of rows costs no memory per row.
"""

from __future__ import annotations

import hashlib
import json
import math
from dataclasses import dataclass, field

import pyarrow as pa

from video2numpy.table import check_seconds, parse_seconds


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

    def wanted(self) -> dict[str, str | None]:
        """Our field name -> the input column that holds it."""
        return {
            "location": self.location,
            "caption": self.caption,
            "id": self.id,
            "start": self.start,
            "end": self.end,
            "split": self.split,
        }


@dataclass
class Shard:
    shard_id: int
    name: str  # "00001": the tar is 00001.tar
    table: pa.Table | None = None  # its slice of the input table (None for an input tar)
    columns: Columns = field(default_factory=Columns)
    key_digits: tuple[int, int] = (5, 4)
    tar: str | None = None  # an input tar: its rows are known only while it is read
    _digest: str | None = field(default=None, repr=False, compare=False)

    @property
    def size(self) -> int | None:
        """Rows in the shard; None for an input tar (known once it has been read)."""
        return None if self.table is None else self.table.num_rows

    def rows(self) -> list[dict]:
        """The shard's rows as dicts with ``key``, ``location``, ``caption``, ... ``extra``."""
        if self.table is None:
            raise ValueError(f"shard {self.name} is an input tar: read it with tar_rows")
        columns = self.columns
        data = {k: _column(self.table, c) for k, c in columns.wanted().items()}
        saved = {c: self.table.column(c).to_pylist() for c in columns.save}
        shard_digits, sample_digits = self.key_digits
        rows = []
        for i in range(self.table.num_rows):
            record = {k: (v[i] if v is not None else None) for k, v in data.items()}
            record["location"] = str(record["location"] or "").strip()
            record["start"] = parse_seconds(record["start"])  # "0:01:30" -> 90.0 (checked
            record["end"] = parse_seconds(record["end"])  # by plan_shards)
            record["key"] = f"{self.shard_id:0{shard_digits}d}{i:0{sample_digits}d}"
            record["extra"] = {c: saved[c][i] for c in columns.save}
            rows.append(record)
        return rows

    def splits(self) -> list[str]:
        """The distinct values of the split column in this shard."""
        column = self.columns.split
        if self.table is None or column not in self.table.column_names:
            return []
        values = self.table.column(column).unique().to_pylist()
        return sorted({str(v) for v in values if v is not None})

    def digest(self) -> str:
        """A content hash of what the shard's rows say (the columns this run reads), so that
        a rerun can tell an unchanged shard from one whose rows changed."""
        if self.table is None:
            return ""
        if self._digest is not None:
            return self._digest
        h = hashlib.sha256()
        used = [c for c in [*self.columns.wanted().values(), *self.columns.save] if c]
        for name in sorted(set(used) & set(self.table.column_names)):
            values = self.table.column(name).to_pylist()
            h.update(json.dumps([name, values], default=str, allow_nan=True).encode())
        h.update(str(self.table.num_rows).encode())
        self._digest = h.hexdigest()
        return self._digest


def _column(table: pa.Table, name: str | None) -> list | None:
    return table.column(name).to_pylist() if name and name in table.column_names else None


def key_digits(samples_per_shard: int, shard_count: int) -> tuple[int, int]:
    """(shard digits, sample digits): at least 5 for shards, and room for every index."""
    return max(5, math.ceil(math.log10(max(shard_count, 1) + 1))), len(str(samples_per_shard))


def plan_shards(table: pa.Table, columns: Columns, samples_per_shard: int) -> list[Shard]:
    """Split ``table`` into shards of ``samples_per_shard`` consecutive rows. Raises
    ValueError for a table that cannot be run (a missing column, a start/end cell that is no
    time): checked here, before a model is loaded or ``--dest`` is touched, not at that row
    in the middle of the run."""
    if samples_per_shard < 1:
        raise ValueError("samples_per_shard must be at least 1")
    missing = [c for c in [columns.location, *columns.save] if c not in table.column_names]
    if missing:
        raise ValueError(
            f"the input has no column {missing[0]!r}; its columns are:"
            f" {', '.join(table.column_names)}"
        )
    check_seconds(table, {"start": columns.start, "end": columns.end})
    shard_count = math.ceil(table.num_rows / samples_per_shard)
    digits = key_digits(samples_per_shard, shard_count)
    return [
        Shard(
            s,
            f"{s:0{digits[0]}d}",
            table.slice(s * samples_per_shard, samples_per_shard),
            columns,
            digits,
        )
        for s in range(shard_count)
    ]


def input_digest(shards: list[Shard]) -> str:
    """The whole input's content hash, from its shards' hashes."""
    h = hashlib.sha256()
    for shard in shards:
        h.update(shard.digest().encode())
    return h.hexdigest()
