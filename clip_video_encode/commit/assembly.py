"""Rows in, committed shards out: the bookkeeping every executor shares.

An executor (local, Ray) asks :meth:`Assembly.sources` for the videos to decode, in shard
order, and hands each video's decode record and embeddings back to :meth:`Assembly.finish`,
in any order. The assembly turns them into samples, feeds each shard's writer (which writes
in input order) and commits a shard as soon as its last row is in. So the shards are the same
whichever executor ran, and however its work was scheduled.

Memory holds only the videos in flight: a row is made when its video is handed out and
dropped when its sample is written, so a run over millions of rows stays flat.
"""

from __future__ import annotations

import contextlib
import os
import shutil
from collections import Counter
from collections.abc import Callable, Iterable, Iterator
from dataclasses import dataclass

import numpy as np
import pyarrow as pa

from video2numpy.scratch import make_scratch
from video2numpy.status import FAILED_TO_FETCH, SUCCESS

from ..plan.job import EncodeJob
from ..plan.retry import Redo, committed_samples
from ..plan.run_file import Plan, RunMismatch
from ..plan.shards import Shard
from ..plan.tars import tar_rows
from .ledger import Ledger
from .samples import caption_text, finish_sample
from .writer import Sample, ShardWriter

FAILED_TO_ENCODE = "failed_to_encode"


@dataclass
class Slot:
    """Where a video's sample goes, and its input row."""

    shard: int  # position in the list of shards to do
    index: int  # position in its shard
    row: dict


def extra_types(shard) -> dict | None:
    """The parquet types of a table's copied columns: the input's own, for every shard alike
    (a column null throughout the table is text). None for an input tar."""
    if shard.table is None:
        return None
    schema = shard.table.schema
    return {c: (pa.string() if pa.types.is_null(schema.field(c).type) else schema.field(c).type)
            for c in shard.columns.save}  # fmt: skip


class Assembly:
    def __init__(
        self,
        job: EncodeJob,
        plan: Plan,
        ledger: Ledger,
        embed_dim: int,
        similarity: Callable[[np.ndarray, str], np.ndarray] | None,
        shards: Iterable[Shard] | None = None,
    ) -> None:
        """``shards``: those to do, in order (the plan's ``todo`` unless given: a Ray
        pipeline takes them one at a time from the run's queue)."""
        self.job, self.plan, self.ledger = job, plan, ledger
        self.fs, self.dest = ledger.fs, ledger.dest
        self.embed_dim, self.similarity = embed_dim, similarity
        self.shards = plan.todo if shards is None else shards
        self.summary = ledger.summary
        self.slots: dict[int, Slot] = {}  # videos handed out and not yet finished
        self.writers: dict[int, ShardWriter] = {}
        self.done_here: dict[int, tuple[Counter, list]] = {}  # shard -> its rows done here
        self.scratch = make_scratch("clip-video-encode-")  # and dead runs' removed
        self.finished = 0

    def sources(self) -> Iterator[dict]:
        """Videos to decode, in shard order, as ``{"location", "start", "end"}``; the n-th
        yielded is video ``n`` for :meth:`finish`. Tar members are streamed to scratch files
        as they are asked for; a scratch file stays until its video is finished, so an
        executor may decode it again (a lost worker)."""
        video = 0
        for s, shard in enumerate(self.shards):
            redo = self.plan.retries.get(shard.name)
            self.writers[s] = ShardWriter(
                self.fs, self.dest, shard.name, shard.size, self.embed_dim,
                self.plan.captions, self.job.output_format, shard.digest(),
                self.job.io_retries, extra_types(shard), replaces=redo is not None,
                json_fields=None if redo is None else redo.json_fields,
            )  # fmt: skip
            if shard.tar is None:
                rows = shard.rows()
            else:
                keep = None if redo is None else redo.positions.__contains__
                scratch = os.path.join(self.scratch, str(s))
                rows = tar_rows(shard.tar, scratch, keep, self.job.encoding, shard.name)
            if redo is not None:
                rows = self._retried_rows(s, shard, redo, rows)
            n = 0
            for n, row in enumerate(rows, 1):
                if row is None:
                    continue  # a committed sample, kept as it is
                self.slots[video] = Slot(s, n - 1, row)
                yield {"location": row.get("fetch", row["location"]),
                       "start": row["start"], "end": row["end"]}  # fmt: skip
                video += 1
            del rows
            if shard.size is None:  # a tar's writer cannot complete before its size is known
                self.writers[s].n_rows = n
                self._close_complete()

    def _retried_rows(
        self, s: int, shard: Shard, redo: Redo, rows: Iterator[dict]
    ) -> Iterator[dict | None]:
        """The rows of a committed shard, for --retry-failed: those to do again as they are,
        the others (None) copied at once from the committed shard to its writer."""
        committed = committed_samples(self.fs, redo)
        for n, row in enumerate(rows):
            old, parts = next(committed, (None, None))
            if old is None or old["key"] != row["key"]:
                how = (  # --replan compares a table's rows; a tar has no row hash to compare
                    f"remove {self.dest}/{shard.name}_stats.json to redo the shard"
                    " from the tar as it is now"
                    if shard.tar is not None
                    else "rerun without --retry-failed (with --replan)"
                )
                raise RunMismatch(
                    f"{redo.data} does not hold the rows of the input any more"
                    f" ({row['key']!r} at {n}): the input changed since it was committed."
                    f" Use another --dest, or {how}."
                )
            if n in redo.positions:
                yield row
            else:
                self.writers[s].add(Sample(n, row["key"], {}, members=parts, row=old))
                self._close_complete()
                yield None
        if next(committed, None) is not None:
            raise RunMismatch(f"{redo.data} holds more rows than the input: it changed since")

    def finish(
        self, video: int, record: dict, embeddings: np.ndarray | None, error: str | None = None
    ) -> None:
        """Write video ``video``'s sample: its decode ``record``, its embeddings (None for a
        failed video), or the ``error`` that stopped its encoding."""
        slot = self.slots.pop(video)
        row = slot.row
        self._remove_scratch(row)
        record = dict(record)
        if row.get("input_warning"):  # text of an input tar that could not be read
            record["warning"] = "; ".join(filter(None, [row["input_warning"],
                                                        record.get("warning")]))  # fmt: skip
        if row.get("upstream_failure"):
            status, message = row["upstream_failure"]
            record.update(status=status, error_message=message)
            embeddings = None
        elif row.get("missing_member"):
            record.update(status=FAILED_TO_FETCH, error_message=row["missing_member"])
            embeddings = None
        elif error is not None:
            record.update(status=FAILED_TO_ENCODE, error_message=error)
            embeddings = None
        elif record["status"] != SUCCESS:
            embeddings = None
        sample = finish_sample(row, slot.index, record, embeddings, self.similarity, self.job)
        self.writers[slot.shard].add(sample)
        self.summary.count(sample.meta)
        statuses, frames = self.done_here.setdefault(slot.shard, (Counter(), [0]))
        statuses[sample.meta["status"]] += 1
        frames[0] += sample.meta["n_frames"]
        self.finished += 1
        self._close_complete()

    def caption(self, video: int) -> str | None:
        """The caption of a video handed out and not yet finished."""
        return caption_text(self.slots[video].row.get("caption"))

    def abort(self) -> None:
        for writer in self.writers.values():
            writer.abort()
        self.close()

    def close(self) -> None:
        shutil.rmtree(self.scratch, ignore_errors=True)

    def _remove_scratch(self, row: dict) -> None:
        path = row.get("fetch")
        if path and path.startswith(self.scratch):
            with contextlib.suppress(OSError):
                os.remove(path)

    def _close_complete(self) -> None:
        for s in [s for s, w in self.writers.items() if w.complete]:
            self.ledger.check()
            stats = self.writers.pop(s).close()
            statuses, frames = self.done_here.pop(s, (Counter(), [0]))
            # What this run did in the shard (all of it, but for --retry-failed), for an
            # executor that counts committed shards rather than videos (Ray pipelines).
            done = {"status_dict": dict(statuses), "frames": frames[0]}
            self.ledger.committed({**stats, "done_here": done})
