"""Rows in, committed shards out: the bookkeeping every executor shares.

An executor (local, Ray) asks :meth:`Assembly.sources` for the videos to decode, in shard
order, and hands each video's decode record and embeddings back to :meth:`Assembly.finish`,
in any order. The assembly turns them into samples, feeds each shard's writer (which writes
in input order) and commits a shard as soon as its last row is in. So the shards are the same
whichever executor ran, and however its work was scheduled.
"""

from __future__ import annotations

import contextlib
import os
import shutil
import tempfile
from collections.abc import Callable, Iterator
from dataclasses import dataclass

import numpy as np

from video2numpy.status import FAILED_TO_FETCH, SUCCESS

from .dataset import EncodeJob, finish_sample
from .tars import tar_rows
from .writer import ShardWriter

FAILED_TO_ENCODE = "failed_to_encode"


@dataclass
class Slot:
    """Where a video's sample goes."""

    shard: int  # position in the list of shards to do
    row: int  # position in its shard


class Assembly:
    def __init__(
        self,
        job: EncodeJob,
        run: dict,
        fs,
        dest: str,
        embed_dim: int,
        similarity: Callable[[np.ndarray, str], np.ndarray] | None,
    ) -> None:
        self.job, self.run, self.fs, self.dest = job, run, fs, dest
        self.embed_dim, self.similarity = embed_dim, similarity
        self.shards = run["todo"]
        self.summary = run["summary"]
        self.slots: list[Slot] = []
        self.writers: dict[int, ShardWriter] = {}
        self.scratch = tempfile.mkdtemp(prefix="clip-video-encode-")
        self.finished = 0

    @property
    def total(self) -> int | None:
        """Videos to do, when known up front (not for tar input, whose size shows on reading)."""
        if all(s.tar is None for s in self.shards):
            return sum(len(s.rows) for s in self.shards)
        return None

    def sources(self) -> Iterator[dict]:
        """Videos to decode, in shard order, as ``{"location", "start", "end"}``; the n-th
        yielded is video ``n`` for :meth:`finish`. Tar members are streamed to scratch files
        as they are asked for."""
        for s, shard in enumerate(self.shards):
            known = shard.tar is None
            self.writers[s] = ShardWriter(
                self.fs, self.dest, shard.name, len(shard.rows) if known else None,
                self.embed_dim, self.run["captions"], self.job.output_format,
            )  # fmt: skip
            rows = shard.rows if known else tar_rows(shard.tar, self.scratch)
            for r, row in enumerate(rows):
                if not known:
                    shard.rows.append(row)
                self.slots.append(Slot(s, r))
                yield {"location": row.get("fetch", row["location"]),
                       "start": row["start"], "end": row["end"]}  # fmt: skip
            if not known:  # a tar's writer cannot complete before its size is known
                self.writers[s].n_rows = len(shard.rows)
                self._close_complete()

    def row(self, video: int) -> dict:
        slot = self.slots[video]
        return self.shards[slot.shard].rows[slot.row]

    def decoded(self, video: int) -> None:
        """The video's file is no longer needed (a tar member's scratch copy is removed)."""
        path = self.row(video).get("fetch")
        if path and path.startswith(self.scratch):
            with contextlib.suppress(OSError):
                os.remove(path)

    def finish(
        self, video: int, record: dict, embeddings: np.ndarray | None, error: str | None = None
    ) -> None:
        """Write video ``video``'s sample: its decode ``record``, its embeddings (None for a
        failed video), or the ``error`` that stopped its encoding."""
        slot = self.slots[video]
        row = self.row(video)
        record = dict(record)
        if row.get("missing_member"):
            record.update(status=FAILED_TO_FETCH, error_message=row["missing_member"])
            embeddings = None
        elif error is not None:
            record.update(status=FAILED_TO_ENCODE, error_message=error)
            embeddings = None
        elif record["status"] != SUCCESS:
            embeddings = None
        sample = finish_sample(row, slot.row, record, embeddings, self.similarity, self.job)
        self.writers[slot.shard].add(sample)
        self.summary.count(sample.meta)
        self.finished += 1
        self._close_complete()

    def abort(self) -> None:
        for writer in self.writers.values():
            writer.abort()
        self.close()

    def close(self) -> None:
        shutil.rmtree(self.scratch, ignore_errors=True)

    def _close_complete(self) -> None:
        for s in [s for s, w in self.writers.items() if w.complete]:
            self.summary.shard_done(self.writers.pop(s).close())
