"""Many videos in parallel worker processes, with bounded memory and a stall watchdog.

Each worker owns a pipe to the parent. A worker blocks on sending its next chunk until the
parent has taken the last one, so memory stays at about one chunk per worker however fast
decoding is and however long the videos are. A worker that crashes (a decoder segfault) or
has sent nothing for ``timeout`` seconds (a download sends heartbeats while bytes arrive),
and has nothing waiting to be read, is killed and replaced; its video gets a failed record
and the others go on. Each worker's scratch folder (downloads, tar members) is made and
removed by the parent, so a killed worker leaves nothing behind.
"""

from __future__ import annotations

import multiprocessing as mp
import os
import shutil
import tempfile
import time
from collections.abc import Iterable, Iterator, Mapping
from multiprocessing.connection import Connection, wait

import numpy as np

from .scratch import make_scratch
from .status import FAILED_TO_DECODE, TIMEOUT
from .video import Chunk, FrameOptions, Task, sample_video

# A worker downloading a video says so this often (while bytes arrive), so the stall watchdog
# counts only silence: an hour-long video may take longer to download than ``timeout``.
HEARTBEAT_SECONDS = 1.0


def default_workers() -> int:
    """One decoder per core: the fastest arrangement for single-threaded decoders."""
    try:
        return max(1, len(os.sched_getaffinity(0)))
    except AttributeError:
        return max(1, os.cpu_count() or 1)


def stream_videos(
    sources: Iterable[str | Mapping],
    options: FrameOptions | None = None,
    workers: int | None = None,
    timeout: float = 300.0,
) -> Iterator[Chunk]:
    """Yield :class:`Chunk` s for every source, in completion order.

    ``sources`` are locations or mappings with ``location`` and optional ``start``/``end``;
    each chunk's ``index`` is the source's position. ``workers=0`` decodes in this process
    (for debugging). Stopping the iteration stops the workers.
    """
    options = options or FrameOptions()
    tasks = (Task.from_source(i, s) for i, s in enumerate(sources))
    workers = default_workers() if workers is None else workers
    if hasattr(sources, "__len__"):  # no more processes than videos
        workers = min(workers, max(1, len(sources)))
    if workers == 0:
        with tempfile.TemporaryDirectory(prefix="video2numpy-") as workdir:
            for task in tasks:
                yield from sample_video(task, options, workdir)
        return
    pool = _Pool(workers, options)
    try:
        yield from pool.run(tasks, timeout)
    finally:
        pool.close()


def read_videos(
    sources: Iterable[str | Mapping],
    options: FrameOptions | None = None,
    workers: int | None = None,
    timeout: float = 300.0,
) -> Iterator[tuple[np.ndarray, dict]]:
    """Yield ``(frames, record)`` per video, in completion order (``record["index"]``).

    Whole videos are assembled in memory; for very long videos use :func:`stream_videos`.
    """
    parts: dict[int, list[np.ndarray]] = {}
    for chunk in stream_videos(sources, options, workers, timeout):
        parts.setdefault(chunk.index, []).append(chunk.frames)
        if chunk.record is not None:
            frames = parts.pop(chunk.index)
            if chunk.record["status"] != "success":
                frames = frames[-1:]  # the empty final chunk: no partial video is returned
            yield np.concatenate(frames), chunk.record


def _worker_main(conn: Connection, options: FrameOptions, workdir: str) -> None:
    try:
        while True:
            task = conn.recv()
            if task is None:
                return
            for chunk in sample_video(task, options, workdir, heartbeat=HEARTBEAT_SECONDS):
                conn.send(chunk)  # None: a download going on (resets the stall clock)
    except (EOFError, BrokenPipeError, KeyboardInterrupt):
        return


class _Worker:
    def __init__(self, ctx, options: FrameOptions) -> None:
        self.conn, child = ctx.Pipe(duplex=True)
        # The parent owns the scratch folder: a worker killed mid-download cannot clean up;
        # one whose parent was killed too is removed by a later run (scratch.py).
        self.workdir = make_scratch("video2numpy-worker-")
        self.process = ctx.Process(
            target=_worker_main, args=(child, options, self.workdir), daemon=True
        )
        self.process.start()
        child.close()
        self.task: Task | None = None
        self.heard = time.monotonic()  # when this worker last sent something, or got a task

    def give(self, task: Task) -> None:
        self.task, self.heard = task, time.monotonic()
        self.conn.send(task)

    def stop(self, kill: bool = False) -> None:
        if kill:
            self.process.kill()
        else:
            try:
                self.conn.send(None)
            except OSError:
                pass
        self.process.join(timeout=5)
        if self.process.is_alive():
            self.process.kill()
            self.process.join()
        self.conn.close()
        shutil.rmtree(self.workdir, ignore_errors=True)


class _Pool:
    def __init__(self, size: int, options: FrameOptions) -> None:
        # spawn, not fork: the parent may hold threads (torch, Ray) that fork would break.
        self.ctx = mp.get_context("spawn")
        self.options = options
        self.workers = [_Worker(self.ctx, options) for _ in range(size)]

    def run(self, tasks: Iterator[Task], timeout: float) -> Iterator[Chunk]:
        pending = True
        while True:
            for i, worker in enumerate(self.workers):
                if worker.task is None and pending:
                    task = next(tasks, None)
                    if task is None:
                        pending = False
                    else:
                        self._give(i, task)
            busy = [w for w in self.workers if w.task is not None]
            if not busy:
                return
            ready = wait([w.conn for w in busy], timeout=min(1.0, timeout))
            now = time.monotonic()
            for i, worker in enumerate(self.workers):
                if worker.task is None:
                    continue
                if worker.conn in ready:
                    try:
                        chunk = worker.conn.recv()
                    except (EOFError, OSError):
                        yield self._replace(
                            i,
                            "the worker process died while decoding"
                            f" (exit code {worker.process.exitcode})",
                        )
                        continue
                    worker.heard = time.monotonic()
                    if chunk is None:  # a heartbeat: its download is going on
                        continue
                    if chunk.record is not None:
                        worker.task = None
                    yield chunk
                else:
                    # Wall-clock silence: other workers' chunks, or a consumer that took its
                    # time, do not stop this clock. A worker blocked on sending is ready.
                    if now - worker.heard > timeout and not worker.conn.poll():
                        yield self._replace(
                            i, f"no progress for {timeout:g} s; the worker was stopped", TIMEOUT
                        )

    def _give(self, i: int, task: Task) -> None:
        """Hand ``task`` to worker ``i``; one that died while idle (killed, out of memory) is
        replaced first, so the task is not lost with it."""
        try:
            self.workers[i].give(task)
        except OSError:
            self.workers[i].task = None
            self.workers[i].stop(kill=True)
            self.workers[i] = _Worker(self.ctx, self.options)
            self.workers[i].give(task)

    def _replace(self, i: int, message: str, status: str = FAILED_TO_DECODE) -> Chunk:
        """Kill worker ``i``, start a fresh one, and return the failed record for its task."""
        worker = self.workers[i]
        task = worker.task
        worker.stop(kill=True)
        self.workers[i] = _Worker(self.ctx, self.options)
        shape = (0, *self.options.resize.output_shape(1, 1))
        record = {
            "index": task.index,
            "location": task.location,
            "start": task.start,
            "end": task.end,
            "status": status,
            "error_message": message,
            "n_frames": 0,
            "timestamps": [],
        }
        return Chunk(task.index, np.zeros(shape, dtype=np.uint8), np.zeros(0), record)

    def close(self) -> None:
        for worker in self.workers:
            worker.stop(kill=worker.task is not None)
