"""Unique ids for the rows a conversion writes: DESIGN.md section 7 says two inputs never
share an output name, and an id is what a user joins on and what names a clip's file.

Real annotation files repeat rows (the same line twice, or the same file given twice) and
give distinct rows one id (ActivityNet's val_1 and val_2 both number the segments of a video
from 0). A row that repeats an earlier one exactly is left out; a different row with an
earlier row's id gets ``<id>~<n>`` (n = 2, 3, ...), or with ``--strict`` stops the
conversion naming both lines. Both are counted in a note that names the first few.

Memory: the most recent ``YOUNG`` ids are held exactly (with their lines, about 15 MB);
older ones as 64-bit hashes with a digest of their row, 16 bytes each, in sorted runs that
past ``MEMORY_RUN`` entries live in memory-mapped files in a scratch folder (removed at the
end; their pages are file cache the kernel can reclaim). bench/convert.py at 1.2 M rows: peak
RSS 1.07-1.12x that at a tenth of the rows (200,000 exact ids gave 1.31-1.41x).
"""

from __future__ import annotations

import contextlib
import hashlib
import os
import shutil
import tempfile
from collections.abc import Iterable, Iterator

import numpy as np

YOUNG = 50_000  # an earlier row is named by its line when it is among these
BATCH = 4096
MEMORY_RUN = 1 << 18  # entries; larger runs are memory-mapped files
_MASK = (1 << 64) - 1


def id_hash(key: str) -> int:
    """A 64-bit hash of an id, the same in every run (Python's ``hash`` of a str is not)."""
    return int.from_bytes(hashlib.blake2b(key.encode("utf-8", "surrogatepass"),
                                          digest_size=8).digest(), "little")  # fmt: skip


def content_digest(row: dict) -> int:
    """A digest of a row's fields but ``_where`` (its line): equal rows give equal digests.
    (The other private fields, the names of its files, follow from the written ones.)
    Compared within one run only, so Python's ``hash`` serves."""
    where = row.pop("_where", None)
    try:
        items = tuple(row.items())
        try:
            return hash(items) & _MASK
        except TypeError:  # lists (captions, moments): hashed as tuples
            return hash(_frozen(items)) & _MASK
    finally:
        if where is not None:
            row["_where"] = where


def _frozen(value):
    if isinstance(value, list | tuple):
        return tuple(_frozen(v) for v in value)
    if isinstance(value, dict):
        return tuple((k, _frozen(v)) for k, v in value.items())
    return value


class IdLedger:
    """Every id written so far; :meth:`unique` passes rows through, leaving out exact
    duplicates and renaming distinct rows whose id is taken. ``report`` gets the counts."""

    def __init__(self, report, strict: bool = False, young: int = YOUNG) -> None:
        self.report, self.strict, self.capacity = report, strict, young
        # id -> (digest, where, id_hash or None when not yet computed)
        self.young: dict[str, tuple[int, str | None, int | None]] = {}
        self.runs: list[tuple[np.ndarray, np.ndarray]] = []  # (sorted id hashes, digests)
        self.suffix: dict[str, int] = {}  # the next ~n to try, for ids that collided
        # For ids that collided: each renamed row's digest (under its original id) -> its new
        # id and line, so that the same row again is a duplicate, not one more rename.
        self.renamed: dict[str, dict[int, tuple[str, str | None]]] = {}
        self.folder: str | None = None

    def unique(self, rows: Iterable[dict]) -> Iterator[dict]:
        try:
            batch: list[dict] = []
            for row in rows:
                batch.append(row)
                if len(batch) >= BATCH:
                    yield from self._admit_all(batch)
                    batch = []
            yield from self._admit_all(batch)
        finally:
            self.close()

    def close(self) -> None:
        self.runs = []
        if self.folder is not None:
            shutil.rmtree(self.folder, ignore_errors=True)
            self.folder = None

    def _admit_all(self, batch: list[dict]) -> Iterator[dict]:
        keys = [str(row["id"]) for row in batch]
        hashes = [id_hash(k) for k in keys] if self.runs else [None] * len(keys)
        older = self._older(keys, hashes)
        for row, old, hashed in zip(batch, older, hashes, strict=True):
            row = self._admit(row, old, hashed)
            if row is not None:
                yield row
        if len(self.young) >= self.capacity:
            self._spill()

    def _admit(self, row: dict, old: int | None, hashed: int | None) -> dict | None:
        key, where = str(row["id"]), row.get("_where")
        digest = content_digest(row)
        seen = self.young.get(key)
        if seen is None and old is not None:
            seen = (old, None, None)
        if seen is None:
            self.young[key] = (digest, where, hashed)
            return row
        earlier = seen[1] or "an earlier row"
        if seen[0] == digest:
            self.report.tally(where, f"repeats {earlier}", "exact duplicate rows left out")
            return None
        variants = self.renamed.setdefault(key, {})
        if digest in variants:
            new, first = variants[digest]
            self.report.tally(where, f"repeats {first} (written as {new})",
                              "exact duplicate rows left out")  # fmt: skip
            return None
        if self.strict:
            raise ValueError(
                f"{where}: id {key} is also the id of {earlier}, a different row (--strict;"
                " without it the later row gets <id>~2)"
            )
        new = self._free(key)
        variants[digest] = (new, where)
        row["id"] = new
        self.young[new] = (content_digest(row), where, None)
        self.report.tally(where, f"id {key} renamed {new} (the id of {earlier})",
                          "rows renamed: another row has their id")  # fmt: skip
        return row

    def _free(self, key: str) -> str:
        n = self.suffix.get(key, 2)
        while f"{key}~{n}" in self.young or self._older([f"{key}~{n}"])[0] is not None:
            n += 1
        self.suffix[key] = n + 1
        return f"{key}~{n}"

    def _older(self, keys: list[str], hashes: list | None = None) -> list[int | None]:
        """The digest each key has in the spilled runs, or None."""
        found: list[int | None] = [None] * len(keys)
        if not self.runs or not keys:
            return found
        hashes = np.fromiter(hashes or (id_hash(k) for k in keys), np.uint64, len(keys))
        for ids, digests in self.runs:
            at = np.minimum(np.searchsorted(ids, hashes), len(ids) - 1)
            for i in np.flatnonzero(ids[at] == hashes):
                found[i] = int(digests[at[i]])
        return found

    def _spill(self) -> None:
        """Move the young ids into a sorted run; merge runs of like size (so there are
        about log2(rows / YOUNG) of them)."""
        size = len(self.young)
        hashes = np.fromiter((id_hash(k) if h is None else h for k, (_, _, h) in
                              self.young.items()), np.uint64, size)  # fmt: skip
        digests = np.fromiter((d for d, _, _ in self.young.values()), np.uint64, size)
        order = np.argsort(hashes, kind="stable")
        self.young = {}
        run = (hashes[order], digests[order])
        while self.runs and len(self.runs[-1][0]) <= 2 * len(run[0]):
            run = self._merge(self.runs.pop(), run)
        self.runs.append(run)

    def _merge(self, a, b):
        size = len(a[0]) + len(b[0])
        to_b = np.searchsorted(a[0], b[0]) + np.arange(len(b[0]))
        from_a = np.ones(size, bool)
        from_a[to_b] = False
        out = (self._array(size), self._array(size))
        for part in (0, 1):
            out[part][to_b] = b[part]
            out[part][from_a] = a[part]
        for array in (*a, *b):
            self._drop(array)
        return out

    def _array(self, size: int) -> np.ndarray:
        if size <= MEMORY_RUN:
            return np.empty(size, np.uint64)
        if self.folder is None:
            self.folder = tempfile.mkdtemp(prefix="video-convert-ids-")
        handle, path = tempfile.mkstemp(dir=self.folder, suffix=".u64")
        os.close(handle)
        return np.memmap(path, np.uint64, "w+", shape=(size,))

    @staticmethod
    def _drop(array: np.ndarray) -> None:
        """Remove a merged run's file (its mapping ends when the array is dropped)."""
        if isinstance(array, np.memmap) and array.filename:
            with contextlib.suppress(OSError):
                os.remove(array.filename)
