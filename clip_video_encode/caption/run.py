"""One captioning run: plan (read the source, bind the settings), execute (sample clips,
generate in batches), commit (one shard at a time), then assemble the table.

Rows are sampled ahead by ``workers`` threads (fetching and decoding release the GIL), each
row into a bounded queue of its own, and the model takes clips in row and window order, so
which clips share a batch depends on the shard alone, never on which decoder finished first:
a shard redone after a kill gets the same batches, hence the same captions, as the first
try. Batches never span shards. Memory holds ``workers`` rows' queues of at most
``batch_size`` clips each, however long the videos.
"""

from __future__ import annotations

import contextlib
import dataclasses
import os
import queue
import shutil
import tempfile
import threading
import time
from collections import Counter
from collections.abc import Iterator
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field

import numpy as np
from tqdm import tqdm

from video2numpy.encodings import check_encoding
from video2numpy.scratch import make_scratch
from video2numpy.status import FAILED_TO_FETCH, SUCCESS
from video2numpy.versions import package_versions

from ..destination.lease import Lease
from ..plan.shards import Columns
from .frames import Clip, ClipPlan, sample_clips
from .model import Captioner, CaptionerOptions
from .source import Source, read_source
from .table import CAPTION_MODES, RESERVED, Parts, check_out, output_row, shard_table

# Settings that change the bytes written: a rerun into the same parts folder must match them.
BINDING = ("input", "input_sha256", "rows", "per", "window_seconds", "samples_per_shard",
           "columns", "caption_mode", "model", "weights_sha256", "processor_sha256",
           "tokenizer_sha256", "num_frames", "num_beams", "min_length", "max_length",
           "precision", "backend")  # fmt: skip


@dataclass(frozen=True)
class CaptionJob:
    src: str
    out: str
    captioner: CaptionerOptions = field(default_factory=CaptionerOptions)
    plan: ClipPlan = field(default_factory=ClipPlan)
    columns: Columns = field(default_factory=Columns)
    caption_mode: str = "fill"
    samples_per_shard: int = 1000
    # clips per batch; None: 32 on a GPU, 4 on a CPU (bench/caption.py, SpaceTimeGPT's size:
    # 4 was as fast per clip as 1 or faster, at about 1 GB more per clip: beam search keeps
    # 8 copies of each clip's cross-attention keys and values)
    batch_size: int | None = None
    workers: int = 4  # rows sampled ahead, in threads
    encoding: str | None = None

    def __post_init__(self) -> None:
        if self.caption_mode not in CAPTION_MODES:
            raise ValueError(f"--caption must be one of {', '.join(CAPTION_MODES)}")
        for name in ("samples_per_shard", "workers", "batch_size"):
            value = getattr(self, name)
            if value is not None and value < 1:
                raise ValueError(f"--{name.replace('_', '-')} must be >= 1, got {value}")
        check_encoding(self.encoding)


def caption_dataset(job: CaptionJob, captioner: Captioner | None = None,
                    progress: bool | None = None) -> dict:  # fmt: skip
    """Run ``job``; returns its summary. Unusable input fails before the model loads, and a
    model that cannot load fails before anything is written."""
    check_out(job.out, job.src)
    source = read_source(job.src, job.columns, job.samples_per_shard, job.plan.per, RESERVED,
                         job.encoding)  # fmt: skip
    captioner = captioner or Captioner(job.captioner)
    described = captioner.describe()
    plan = dataclasses.replace(job.plan, num_frames=captioner.num_frames)
    settings = _settings(job, source, described)
    parts = Parts(job.out)
    parts.prepare()
    # One run per --out: a second would remove this one's files in progress and redo its
    # shards beside it (clip-video-encode's lease, in the parts folder).
    with Lease(parts.fs, parts.path, flag="--out") as lease:
        return _run(job, source, captioner, plan, settings, parts, lease, progress)


def _run(job, source, captioner, plan, settings, parts, lease, progress) -> dict:
    parts.bind(settings, BINDING)
    parts.remove_partials()
    done = parts.committed()
    todo = [s for s in source.shards if s.name not in done]
    batch = job.batch_size or (32 if captioner.device.startswith("cuda") else 4)
    summary = Summary(len(source.shards), len(source.shards) - len(todo), job.out)
    for name in {s.name for s in source.shards} - {s.name for s in todo}:
        summary.add(done[name], written=False)
    total = None if source.rows is None else sum(s.size or 0 for s in todo)
    quiet = None if progress is None else not progress
    bar = tqdm(total=total, unit="row", desc="caption", disable=quiet)
    scratch = make_scratch("clip-video-caption-")  # a killed run's is removed by the next
    try:
        for shard in todo:
            rows = _caption_shard(shard, source, captioner, plan, job, batch, scratch, bar,
                                  settings)  # fmt: skip
            lease.check()
            stats = parts.commit(shard.name, shard_table(rows, source.carried), settings,
                                 shard.digest)  # fmt: skip
            summary.add(stats)
    finally:
        bar.close()
        shutil.rmtree(scratch, ignore_errors=True)
    lease.check()
    summary.rows = parts.assemble([s.name for s in source.shards], settings)
    return summary.finish()


def _settings(job: CaptionJob, source: Source, described: dict) -> dict:
    return {
        "tool": "clip-video-caption",
        "input": job.src,
        "input_kind": source.kind,
        "input_sha256": source.digest,
        "rows": source.rows,
        "shards": len(source.shards),
        "per": job.plan.per,
        "window_seconds": job.plan.window_seconds if job.plan.per == "window" else None,
        "window_rule": "clip-video-hierarchy clip level" if job.plan.per == "window" else None,
        "samples_per_shard": job.samples_per_shard,
        "columns": dataclasses.asdict(dataclasses.replace(job.columns, save=())),
        "carried_columns": source.renamed,
        "caption_mode": job.caption_mode,
        "backend": job.plan.backend,
        "frames": "video2numpy select_frames(num_frames), native size, then the image processor",
        **described,
        "versions": _versions(),
    }


def _caption_shard(shard, source, captioner, plan, job, batch, scratch, bar, settings):
    """The output rows of one shard, in row and window order."""
    rows: list[dict] = []
    clips: list[tuple[int, Clip]] = []  # (row position, clip) waiting for a batch
    captions: dict[tuple[int, int], str] = {}
    results: list[tuple[int, Clip]] = []

    def flush() -> None:
        ready = [(r, c) for r, c in clips if c.pixels is not None]
        if ready:
            texts = captioner.generate(np.stack([c.pixels for _, c in ready]))
            for (r, c), text in zip(ready, texts, strict=True):
                captions[(r, c.window)] = text
                c.pixels = None  # the batch is done with it
        clips.clear()

    shard_scratch = tempfile.mkdtemp(prefix="shard-", dir=scratch)
    try:
        for position, row, row_clips in _sampled(shard, plan, captioner, job.workers,
                                                 shard_scratch, batch):  # fmt: skip
            rows.append(row)
            for clip in row_clips:
                results.append((position, clip))
                if clip.pixels is not None:
                    clips.append((position, clip))
                    if len(clips) >= batch:
                        flush()
            bar.update(1)
        flush()
    finally:
        shutil.rmtree(shard_scratch, ignore_errors=True)
    out = []
    for position, clip in results:
        row = rows[position]
        key = row["key"] if plan.per != "window" else f"{row['key']}_{clip.window:04d}"
        text = captions.get((position, clip.window))
        out.append(output_row(row, clip, text, settings, job.caption_mode, plan.per, key))
    return out


_DONE = object()


def _sampled(shard, plan, captioner, workers, scratch, batch):
    """``(position, row, clips)`` for each row of the shard, in order; each row's clips are
    sampled ahead in a thread, into a queue of at most ``batch`` clips."""
    pool = ThreadPoolExecutor(max_workers=workers, thread_name_prefix="caption-sample")
    stop = threading.Event()
    pending: list[tuple[int, dict, queue.Queue]] = []
    rows = iter(enumerate(shard.rows(scratch)))

    def put(q: queue.Queue, item) -> bool:
        """Hand an item over, unless the consumer has stopped (then nobody would take it)."""
        while not stop.is_set():
            try:
                q.put(item, timeout=0.2)
                return True
            except queue.Full:
                continue
        return False

    def produce(row: dict, q: queue.Queue, folder: str) -> None:
        try:
            for clip in _row_clips(row, plan, captioner, folder):
                if not put(q, clip):
                    return
        except BaseException as exc:  # handed to the consumer, which raises it
            put(q, exc)
        finally:
            put(q, _DONE)
            shutil.rmtree(folder, ignore_errors=True)
            _remove_member(row)

    def start_next() -> bool:
        item = next(rows, None)
        if item is None:
            return False
        position, row = item
        q: queue.Queue = queue.Queue(maxsize=batch)
        folder = tempfile.mkdtemp(prefix=f"row{position}-", dir=scratch)
        pool.submit(produce, row, q, folder)
        pending.append((position, row, q))
        return True

    def drain(q: queue.Queue) -> Iterator[Clip]:
        while True:
            item = q.get()
            if item is _DONE:
                return
            if isinstance(item, BaseException):
                raise item
            yield item

    try:
        while len(pending) < workers and start_next():
            pass
        while pending:
            position, row, q = pending.pop(0)
            yield position, row, drain(q)
            start_next()
    finally:
        stop.set()
        pool.shutdown(wait=True, cancel_futures=True)


def _row_clips(row: dict, plan: ClipPlan, captioner: Captioner, folder: str) -> Iterator[Clip]:
    """A row's clips; rows that cannot be sampled become one failed clip."""
    problem = row.get("missing_member") or (None if row.get("location") else "no location")
    if problem:
        status, message = row.get("upstream_failure") or (FAILED_TO_FETCH, problem)
        yield Clip(0, None, None, None, [], status, message)
        return
    try:
        start, end = _seconds(row.get("start")), _seconds(row.get("end"))
    except ValueError as exc:
        yield Clip(0, None, None, None, [], "failed_to_decode", f"bad request: {exc}")
        return
    where = row.get("fetch") or row["location"]
    yield from sample_clips(where, start, end, plan, folder, captioner.pixels)


def _remove_member(row: dict) -> None:
    """A tar member's scratch copy, once its row is sampled."""
    path = row.get("fetch")
    if path:
        with contextlib.suppress(OSError):
            os.remove(path)


def _seconds(value) -> float | None:
    if value is None or value == "":
        return None
    number = float(value)
    return None if number != number else number


class Summary:
    def __init__(self, shards: int, skipped: int, out: str) -> None:
        self.shards, self.skipped, self.out = shards, skipped, out
        self.began = time.perf_counter()
        self.statuses: Counter[str] = Counter()
        self.written = 0
        self.rows = 0

    def add(self, stats: dict, written: bool = True) -> None:
        """A committed shard's counts (``written``: by this run, else by an earlier one:
        the summary and the exit code speak for the whole table)."""
        self.written += written
        self.statuses.update(stats["status_dict"])

    def finish(self) -> dict:
        clips = sum(self.statuses.values())
        return {
            "out": self.out,
            "shards": self.shards,
            "shards_written": self.written,
            "shards_skipped": self.skipped,
            "clips": clips,
            "successes": self.statuses.get(SUCCESS, 0),
            "failed": clips - self.statuses.get(SUCCESS, 0),
            "status_dict": dict(sorted(self.statuses.items())),
            "rows": self.rows,
            "seconds": round(time.perf_counter() - self.began, 3),
        }


def _versions() -> dict:
    return package_versions(
        "clip-video-datasets", "transformers", "tokenizers", "torch", "av", "numpy"
    )
