"""The Ray executor: decode actors on CPUs, encoder actors on GPUs (or CPUs), and the driver
assembling and committing shards, exactly as the local executor does. A :class:`Lane` is
that driver's loop over its decoders and encoders; with ``--pipelines`` several lanes run in
actors of their own (``ray_pipelines.py``), for clusters whose encoders outrun one process.

Why Ray core actors rather than Ray Data: a shard must hold each of its input rows exactly
once, in input order, and be committed only when complete, so that shards are the same as the
local executor's and a rerun resumes at the first uncommitted shard. Here the driver owns that
bookkeeping (the same :class:`Assembly` the local executor uses): it hands videos to decode
actors in shard order, sends their frames to encoder actors in the batches the local executor
forms too (:mod:`.batching`), and writes each finished video. Ray Data's ``map_batches``
would re-block and reorder rows and retry failed tasks on its own terms, leaving exactly-once
per shard to be rebuilt on top of it.

Frames stay in the object store. A decode actor's ``decode`` takes a group of videos (about
one encoder batch of frames: one 10-frame clip per call would cost the driver more than the
clip's encoding) and is a streaming generator that yields a small header and then the frames
gathered across videos; the driver reads headers only and passes the frame refs (with the ranges of
each batch) to an encoder actor, which reads them without a copy. Backpressure: the
driver stops pulling from decoders while the frames it holds for encoding reach a limit, and a
decoder's generator pauses after two items nobody pulled, so a slow encoder never lets decoders
fill memory.

Faults: a decoder or encoder that dies (its process killed, its node lost) costs re-doing the
videos it held: they are decoded again from scratch by a fresh actor, and late results of the
old attempt are ignored. A video that takes down its decoder ``max_attempts`` times is recorded
as failed. A driver that dies leaves uncommitted shards, which a rerun redoes.
"""

from __future__ import annotations

import itertools
import os
import sys
import tempfile
import time
from collections import deque
from dataclasses import dataclass, field
from typing import NamedTuple

import numpy as np
from tqdm import tqdm

from video2numpy.status import FAILED_TO_DECODE, SUCCESS, TIMEOUT
from video2numpy.video import FrameOptions, Task, sample_video

from .assembly import Assembly, videos_to_do
from .batching import Batcher, Piece
from .dataset import (
    EncodeJob,
    Input,
    open_destination,
    prepare_run,
    read_input,
    record_in_run,
    with_precision_of_dest,
)
from .encoder import Encoder, EncoderFidelityError, EncoderOptions, cosine_to
from .lease import Lease


@dataclass(frozen=True)
class RayOptions:
    address: str | None = None  # None: RAY_ADDRESS, else a Ray instance started here
    decoders: int | None = None  # None: the cluster's CPUs left after the encoders
    encoders: int | None = None  # None: one per GPU, or one where there is no GPU
    encoder_cpus: float = 1.0  # CPUs an encoder actor reserves where there is no GPU
    encoder_gpus: float | None = None  # GPUs per encoder (None: 1 if the cluster has GPUs)
    encoder_threads: int | None = None  # torch threads of a CPU encoder (None: its node's cores)
    max_attempts: int = 3  # decodes of one video whose actor died, before it is failed
    pipelines: int | None = None  # lanes of decoders+encoders, each writing its own shards
    group_videos: int | None = None  # videos per decode call (None: about a batch of frames)
    local_cpus: int | None = None  # CPUs of a Ray instance started here (None: all)


MAX_GROUP = 64  # videos per decode call at most: a lost decoder costs this many again
# A decode call's length, about: longer groups leave decoders idle at the end of the input
# while others finish theirs, and hold their frames back from the encoders.
GROUP_SECONDS = 2.0
HEARTBEAT_SECONDS = 10.0  # a decoder downloading a video says so this often, at most


class DecodeWorker:
    """Fetches, decodes and samples videos (a Ray actor, one CPU)."""

    # Frames and records wait for more at most this long: encoders get frames soon, and the
    # driver sees progress (and stalls) per video even in a group of slow ones.
    flush_seconds: float = 0.25

    def __init__(self) -> None:
        # Downloads and tar members live here only while their video is decoded.
        self.workdir = tempfile.mkdtemp(prefix="clip-video-encode-decode-")

    def pid(self) -> int:
        return os.getpid()

    def decode(self, videos: list[tuple[int, dict, int | None]], options: FrameOptions,
               heartbeat: float, *data: bytes):  # fmt: skip
        """Decodes ``videos``, ``(video, source, k)`` each, one after another; ``data[k]``
        holds the bytes of a file only the driver can read (a webdataset tar member). Yields
        in turn a header ``{"parts": [(video, n), ...], "shape": (H, W, 3), "records":
        [(video, record), ...]}`` and, when it has parts, their frames in one array. While a
        download goes on, a header (empty, or with what was gathered) every ``heartbeat``
        seconds tells the driver's stall watchdog so.

        Frames of consecutive videos are gathered up to ``options.chunk_frames``, so a group
        of short videos costs the driver a few items instead of three per video: the driver
        is the one process every video passes through. A record always comes after its
        video's frames."""
        out = Gathered(options.chunk_frames)
        for video, source, k in videos:
            path = None
            if k is not None:
                suffix = os.path.splitext(source["location"])[1]
                path = os.path.join(self.workdir, f"member-{video}{suffix}")
                with open(path, "wb") as f:
                    f.write(data[k])
                source = {**source, "location": path}
            try:
                task = Task.from_source(video, source)
                for chunk in sample_video(task, options, self.workdir, heartbeat):
                    if chunk is None:  # downloading
                        yield from out.beat()
                        continue
                    if len(chunk.frames):
                        yield from out.add(video, chunk.frames)
                    if chunk.record is not None:
                        out.records.append((video, chunk.record))
                        if time.monotonic() - out.since > self.flush_seconds:
                            yield from out.flush()
            finally:
                if path:
                    os.remove(path)
        yield from out.flush()


class Gathered:
    """Frames of consecutive videos and their records, on their way out of a decoder."""

    def __init__(self, limit: int) -> None:
        self.limit = limit
        self.parts: list[tuple[int, int]] = []
        self.arrays: list[np.ndarray] = []
        self.records: list[tuple[int, dict]] = []
        self.n = 0
        self.since = time.monotonic()

    def add(self, video: int, frames: np.ndarray):
        if self.arrays and self.arrays[0].shape[1:] != frames.shape[1:]:
            yield from self.flush()  # one frame shape per item (--resize-mode native)
        self.parts.append((video, len(frames)))
        self.arrays.append(frames)
        self.n += len(frames)
        if self.n >= self.limit:
            yield from self.flush()

    def beat(self):
        """An item that shows progress: what was gathered, or an empty header."""
        if self.parts or self.records:
            yield from self.flush()
        else:
            yield {"parts": [], "shape": (), "records": []}

    def flush(self):
        if self.parts or self.records:
            shape = self.arrays[0].shape[1:] if self.arrays else ()
            yield {"parts": self.parts, "shape": shape, "records": self.records}
            if self.arrays:
                yield self.arrays[0] if len(self.arrays) == 1 else np.concatenate(self.arrays)
        self.parts, self.arrays, self.records, self.n = [], [], [], 0
        self.since = time.monotonic()


class EncodeWorker:
    """Holds the model once and encodes batches of frames (a Ray actor, one GPU or CPUs)."""

    def __init__(self, options: EncoderOptions, threads: int | None) -> None:
        import torch

        # Ray limits an actor's threads to its CPU reservation (one, or none at all): a CPU
        # encoder would run on one core. Use the node's cores, as the local executor does.
        torch.set_num_threads(threads or os.cpu_count() or 1)
        self.encoder = Encoder(options)

    def pid(self) -> int:
        return os.getpid()

    def describe(self) -> dict:
        return self.encoder.describe()

    def batch_size(self) -> int:
        return self.encoder.batch_size

    def fidelity(self) -> dict | None:
        return self.encoder.fidelity

    def encode(self, pieces: list[tuple[int, int, int]], *frames: np.ndarray) -> np.ndarray:
        """One batch: ``pieces`` are ``(k, lo, n)``, frames ``lo .. lo + n`` of
        ``frames[k]``, in batch order (objects in the store are read without a copy)."""
        parts = [frames[k][lo : lo + n] for k, lo, n in pieces]
        return self.encoder.encode(parts[0] if len(parts) == 1 else np.concatenate(parts))

    def encode_text(self, text: str) -> np.ndarray:
        return self.encoder.encode_text([text])[0]


@dataclass
class _Video:
    source: dict
    attempt: int = 0  # its decodes so far: results of an earlier one are stale
    failures: int = 0  # decodes lost to its decoder dying or stalling on it
    parts: dict = field(default_factory=dict)  # first frame -> embeddings, as they come
    pending: int = 0  # frames given to the batcher, not back from an encoder yet
    record: dict | None = None
    error: str | None = None
    text: np.ndarray | None = None  # the caption's text embedding (--caption-similarity)
    text_ref: object = None  # that embedding, on its way from an encoder


class _Frames(NamedTuple):
    """Where a piece's frames are: a decoder item in the object store, from one decode of
    its video (results of an earlier decode are stale)."""

    ref: object
    attempt: int


@dataclass
class _Decoding:
    """A group of videos one decoder works through, in order."""

    videos: list  # the videos, in decode order
    attempts: dict  # video -> its attempt this decode belongs to
    actor: object
    generator: object
    header: dict | None = None  # read; the frames it announces not yet pulled
    done: int = 0  # videos whose record has come (they come in order)
    last: float = field(default_factory=time.monotonic)


class Actors(NamedTuple):
    """The actor classes a run starts. Benchmarks of the driver alone swap in actors that
    replay frames and embeddings (``bench/driver_ceiling.py``); runs use these."""

    decode: type = DecodeWorker
    encode: type = EncodeWorker


@dataclass(frozen=True)
class Pools:
    """The actors one lane starts and drives."""

    decoders: int
    encoders: int
    encoder_gpus: float  # per encoder
    encoder_cpus: float  # per encoder


def plan_pools(options: RayOptions, resources: dict, driver_cpus: int) -> list[Pools]:
    """The cluster's decoders and encoders, split into lanes (one per ``--pipelines``).

    Pool sizes follow the resources present now; on an autoscaling cluster, name them
    (--decoders, --encoders, --encoder-gpus) and the autoscaler adds the nodes. A lane is one
    process on the driver's machine that schedules its videos and writes its shards: one per
    encoder at most (a lane without an encoder has nothing to do), and by default one per
    encoder while the driver's machine has two cores for each (measured: a lane keeps up
    with about one GPU's 10-frame clips, ``bench/driver_ceiling.py``); no GPU, one lane."""
    gpus = int(resources.get("GPU", 0))
    cpus = int(resources.get("CPU", 1))
    gpu_each = options.encoder_gpus if options.encoder_gpus is not None else min(gpus, 1)
    n_encoders = options.encoders or (int(gpus // gpu_each) if gpu_each else 1)
    encoder_cpus = 0 if gpu_each else options.encoder_cpus
    # Leave the encoders their CPUs: decoders asking for every CPU would starve them.
    n_decoders = options.decoders or max(1, int(cpus - n_encoders * encoder_cpus))
    lanes = options.pipelines or (min(n_encoders, driver_cpus // 2) if gpu_each else 1)
    lanes = max(1, min(lanes, n_encoders, n_decoders))
    return [
        Pools(_share(n_decoders, lanes, i), _share(n_encoders, lanes, i), gpu_each, encoder_cpus)
        for i in range(lanes)
    ]


def _share(total: int, parts: int, i: int) -> int:
    return total // parts + (i < total % parts)


def encode_dataset_ray(
    job: EncodeJob,
    options: RayOptions | None = None,
    progress: bool | None = None,
    actors: Actors | None = None,
) -> dict:
    """Run ``job`` on a Ray cluster; returns the run's summary, as the local executor does."""
    import ray

    options = options or RayOptions()
    actors = actors or Actors()
    read = read_input(job)  # before any actor: unusable input fails at once, nothing created
    job = with_precision_of_dest(job)
    started_here = not ray.is_initialized()
    if started_here:
        address = options.address or os.environ.get("RAY_ADDRESS")
        init = {"address": address} if address else {"num_cpus": options.local_cpus}
        ray.init(**init, log_to_driver=False, configure_logging=False)
    try:
        pools = plan_pools(options, ray.cluster_resources(), os.cpu_count() or 1)
        if len(pools) > 1:
            from .ray_pipelines import encode_in_pipelines

            return encode_in_pipelines(job, options, actors, pools, read, progress)
        return _encode_in_driver(job, options, actors, pools[0], read, progress)
    finally:
        if started_here:
            ray.shutdown()


def _encode_in_driver(
    job: EncodeJob, options: RayOptions, actors: Actors, pools: Pools, read: Input,
    progress: bool | None,
) -> dict:  # fmt: skip
    """One lane, run by the driver itself."""
    lane = Lane(job, options, actors, pools)
    try:
        description, batch_size = lane.start()
        fs, dest = open_destination(job.dest)
        with Lease(fs, dest, job.lease_seconds) as lease:  # before anything in dest changes
            run = prepare_run(job, description, fs, dest, read)
            shown = Progress(run["summary"], videos_to_do(run), progress, [pools])
            try:
                for finished in lane.steps(run, fs, dest, description, batch_size, lease.check):
                    shown.advance(finished, lane.redone)
            finally:
                shown.close()
                fidelity = lane.fidelity()
                if fidelity:
                    record_in_run(fs, dest, {"fidelity": fidelity})
    finally:
        lane.stop()
    return {**run["summary"].finish(), "redone": lane.redone}


class Progress:
    """The driver's progress bar; without one (a cluster job's log), a line every 30 s."""

    def __init__(self, summary, total: int | None, progress: bool | None, pools: list) -> None:
        self.summary, self.total, self.pools = summary, total, pools
        self.bar = tqdm(total=total, unit="video", desc="encode",
                        disable=None if progress is None else not progress)  # fmt: skip
        self.quiet = progress is False
        self.done = 0
        self.began = self.reported = time.monotonic()

    def advance(self, videos: int, redone: int, every: float = 30.0) -> None:
        if not videos:
            return
        self.done += videos
        self.bar.update(videos)
        now = time.monotonic()
        if not self.bar.disable or self.quiet or now - self.reported < every:
            return
        self.reported = now
        rate = self.done / max(now - self.began, 1e-9)
        total = f"/{self.total}" if self.total is not None else ""
        lanes = f", {len(self.pools)} pipelines" if len(self.pools) > 1 else ""
        print(
            f"clip-video-encode: {self.done}{total} videos ({rate:.2f}/s), shards"
            f" {self.summary.done_shards}/{self.summary.todo} written,"
            f" {sum(p.decoders for p in self.pools)} decoders,"
            f" {sum(p.encoders for p in self.pools)} encoders{lanes}, {redone} redone",
            file=sys.stderr,
            flush=True,
        )

    def close(self) -> None:
        self.bar.close()


class Lane:
    """Decoders and encoders driven by one process: hands videos to decoders in shard order,
    sends their frames to the encoders in the batches :mod:`.batching` forms (the local
    executor's), and writes and commits shards.
    The driver runs one; with ``--pipelines``, each pipeline actor runs one."""

    def __init__(self, job: EncodeJob, options: RayOptions, actors: Actors, pools: Pools):
        import ray

        self.ray, self.job, self.options = ray, job, options
        self.n_encoders, self.n_decoders = pools.encoders, pools.decoders
        self.encoder_actor = ray.remote(actors.encode).options(
            num_gpus=pools.encoder_gpus, num_cpus=pools.encoder_cpus, max_concurrency=1
        )
        self.decoder_actor = ray.remote(actors.decode).options(num_cpus=1)
        self.encoders: list = []
        self.decoders: list = []
        self.redone = 0  # decodes started again after an actor or node was lost
        self._finishing: _Video | None = None  # the video being written (for its caption)
        # Downloads report progress this often: well inside the stall limit, and rarely
        # enough that hundreds of downloading decoders cost the driver little.
        self.heartbeat = min(HEARTBEAT_SECONDS, job.timeout / 4)

    def start(self) -> tuple[dict, int]:
        """Start the actors; the encoder's description and batch size, once it has loaded."""
        ray, threads = self.ray, self.options.encoder_threads
        self.encoders = [self.encoder_actor.remote(self.job.encoder, threads) for _ in
                         range(self.n_encoders)]  # fmt: skip
        # Decoders start while the encoders load the model (frame options come per video).
        self.decoders = [self._new_decoder() for _ in range(self.n_decoders)]
        try:
            description, batch_size = ray.get(
                [self.encoders[0].describe.remote(), self.encoders[0].batch_size.remote()]
            )
        except ray.exceptions.RayActorError as exc:  # the model failed to load: say why
            raise _load_error(exc) from exc
        return description, batch_size

    def stop(self) -> None:
        for actor in self.decoders + self.encoders:
            self.ray.kill(actor)

    def fidelity(self) -> dict | None:
        """The worst of the encoders' first-batch checks (another engine than torch)."""
        checks = []
        for encoder in self.encoders:
            try:
                checks.append(self.ray.get(encoder.fidelity.remote(), timeout=60))
            except Exception:  # a lost encoder has nothing to say
                continue
        checks = [c for c in checks if c]
        return min(checks, key=lambda c: c["min_cosine"]) if checks else None

    def steps(self, run: dict, fs, dest: str, description: dict, batch_size: int, guard):
        """Encode ``run["todo"]``'s shards; yields, as it goes, how many videos it finished
        since the last yield. ``guard``: called before each commit (the lease)."""
        job = self.job
        similarity = self._similarity if job.caption_similarity else None
        self.texts: dict[object, int] = {}  # caption embedding ref -> video
        self.assembly = Assembly(job, run, fs, dest, description["embed_dim"], similarity,
                                 guard=guard)  # fmt: skip
        self.frame_options = run["frames"]
        self.batch_size = batch_size
        # Frames this lane may hold refs to (decoded, not yet encoded) across all videos.
        self.frames_limit = 4 * batch_size * self.n_encoders
        self.idle = deque(self.decoders)
        self.starting: dict[object, object] = {}  # pid ref -> replacement decoder starting
        self.videos: dict[int, _Video] = {}
        self.queue: deque[int] = deque()  # videos to (re)decode, before new sources
        self.decoding: list[_Decoding] = []
        self.decoded = [0, 0, 0.0]  # videos decoded, their frames and seconds: _group_size
        self.batcher = Batcher(batch_size)
        self.held = 0  # frames in flight to encoders (the batcher's wait for their group)
        self.in_flight: dict[object, tuple[object, list]] = {}  # ref -> (encoder, pieces)
        self.load = {id(e): 0 for e in self.encoders}
        sources = enumerate(self.assembly.sources())
        self.more = True
        try:
            while self.more or self.queue or self.decoding or self.in_flight or self.texts:
                before = self.assembly.finished
                self._start_decodes(sources)
                self._step()
                yield self.assembly.finished - before
            if self.batcher.held:  # every video ended: no frame may be left unbatched
                raise RuntimeError(f"{self.batcher.held} frames were never sent to an encoder")
        except BaseException:
            self.assembly.abort()
            raise
        self.assembly.close()

    # -- decoding ---------------------------------------------------------------------------

    def _new_decoder(self):
        return self.decoder_actor.remote()

    def _start_decodes(self, sources) -> None:
        while self.idle and self.held < self.frames_limit:
            if self.queue:  # decoded again: alone, so a video that kills decoders is found
                group = [self.queue.popleft()]
            elif self.more:
                group = []
                for video, source in itertools.islice(sources, self._group_size()):
                    self.videos[video] = _Video(source)
                    slot = self.assembly.slots[video]
                    self._send(self.batcher.register(video, slot.shard, slot.index))
                    self._ask_text(video)
                    group.append(video)
                if not group:
                    self.more = False
                    self._send(self.batcher.close())
                    continue
            else:
                return
            actor = self.idle.popleft()
            specs, data = [], []
            for video in group:
                source = self.videos[video].source
                k = None
                if source["location"].startswith(self.assembly.scratch):
                    with open(source["location"], "rb") as f:  # only the driver has it
                        data.append(self.ray.put(f.read()))
                    k = len(data) - 1
                specs.append((video, source, k))
            generator = actor.decode.options(_generator_backpressure_num_objects=2).remote(
                specs, self.frame_options, self.heartbeat, *data
            )
            attempts = {video: self.videos[video].attempt for video in group}
            self.decoding.append(_Decoding(group, attempts, actor, generator))

    def _group_size(self) -> int:
        """Videos per decode call: about one encoder batch of frames, and no more than
        ``GROUP_SECONDS`` of decoding, judged by the videos decoded so far (one at a time
        until some are). Hour-long videos go one by one, 10-frame clips that decode fast a
        batch's worth at a time."""
        if self.options.group_videos:
            return self.options.group_videos
        videos, frames, seconds = self.decoded
        if not videos:
            return 1
        by_frames = self.batch_size / max(frames / videos, 1.0)
        by_time = GROUP_SECONDS / max(seconds / videos, 1e-3)
        return int(min(MAX_GROUP, max(1, by_frames if by_frames < by_time else by_time)))

    def _step(self) -> None:
        """Wait for the next header, frames or embeddings, and act on it."""
        ray = self.ray
        # Frames waiting in the batcher for the rest of their group do not count: that rest
        # is still to be pulled.
        pulling = self.held < self.frames_limit
        # Finished batches first: ray.wait reports the first ready item of the list.
        waitables = list(self.in_flight) + list(self.starting) + list(self.texts)
        waitables += [d.generator for d in self.decoding] if pulling else []
        if not waitables:
            return
        ready, _ = ray.wait(waitables, num_returns=1, timeout=1.0)
        self._check_stalls(paused=not pulling)
        if not ready:
            return
        item = ready[0]
        if item in self.starting:
            self.idle.append(self.starting.pop(item))
            return
        if item in self.in_flight:
            self._collect(item)
            return
        if item in self.texts:
            self._text_done(item)
            return
        decoding = next(d for d in self.decoding if d.generator is item)
        self._pull(decoding)

    def _pull(self, d: _Decoding) -> None:
        ray = self.ray
        try:
            ref = next(d.generator)
            if d.header is not None:  # the frames the last header announced
                header, d.header = d.header, None
                self._frames_in(d, header, ref)
                self._records_in(d, header["records"])
            else:
                header = ray.get(ref)
                if header["parts"]:
                    d.header = header
                else:
                    self._records_in(d, header["records"])
            d.last = time.monotonic()
        except StopIteration:
            if d in self.decoding:
                self._release(d)
        except (ray.exceptions.RayActorError, ray.exceptions.ObjectLostError) as exc:
            self._decoder_died(d, exc)

    def _frames_in(self, d: _Decoding, header: dict, ref) -> None:
        lo, shape = 0, tuple(header["shape"])
        for video, n in header["parts"]:
            state = self.videos.get(video)
            if state is not None and state.attempt == d.attempts[video]:
                state.pending += n
                frames = _Frames(ref, state.attempt)
                self._send(self.batcher.add(video, frames, lo, n, shape))
            lo += n  # else the video was decoded again meanwhile

    def _records_in(self, d: _Decoding, records: list) -> None:
        for video, record in records:
            d.done += 1
            self._decoded(video, d.attempts[video], record)

    def _decoded(self, index: int, attempt: int, record: dict) -> None:
        video = self.videos.get(index)
        if video is None or video.attempt != attempt:
            return
        if record["status"] != SUCCESS:  # frames already sent are of no use
            self._requeue(index, again=False)
        else:
            self._send(self.batcher.end(index))
            if record.get("n_frames"):
                self.decoded[0] += 1
                self.decoded[1] += record["n_frames"]
                self.decoded[2] += float(record.get("seconds") or 0.0)
        video.record = record
        self._maybe_finish(index)

    def _release(self, d: _Decoding) -> None:
        self.decoding.remove(d)
        self.idle.append(d.actor)

    def _replace_decoder(self, dead) -> None:
        """A fresh actor joins the idle pool once it has started: one that cannot be placed
        (its node is gone and no CPU is free) must not be handed videos."""
        self.ray.kill(dead)
        fresh = self._new_decoder()
        self.decoders = [fresh if a is dead else a for a in self.decoders]
        self.starting[fresh.pid.remote()] = fresh

    def _decoder_died(self, d: _Decoding, exc: Exception) -> None:
        """Replace the actor; decode its unfinished videos again from scratch."""
        self.decoding.remove(d)
        self._replace_decoder(d.actor)
        self._give_back(d, f"decode worker lost: {type(exc).__name__}: {exc}", FAILED_TO_DECODE)

    def _give_back(self, d: _Decoding, why: str, status: str) -> None:
        """A lost decode is charged to its video when it was the only one left in its group;
        otherwise nobody can tell which video it was on (a decoder sends records in batches),
        so each is decoded again alone, where a loss is its own."""
        rest = d.videos[d.done :]
        if len(rest) == 1:
            if self._decoding_now(rest[0], d):
                self._restart(rest[0], why, status)
            return
        for video in reversed([v for v in rest if self._decoding_now(v, d)]):
            self.redone += 1
            self._requeue(video)

    def _decoding_now(self, index: int, d: _Decoding) -> bool:
        video = self.videos.get(index)
        return video is not None and video.attempt == d.attempts[index] and video.record is None

    def _requeue(self, index: int, again: bool = True) -> None:
        """Forget what this decode of the video sent; ``again``: decode it once more
        (otherwise it has failed)."""
        video = self.videos[index]
        video.attempt += 1
        video.parts, video.pending, video.record = {}, 0, None
        if again:
            self.batcher.reset(index)
            self.queue.appendleft(index)
        else:
            self._send(self.batcher.drop(index))

    def _restart(self, index: int, why: str, status: str = FAILED_TO_DECODE) -> None:
        video = self.videos[index]
        video.failures += 1
        if video.failures >= self.options.max_attempts or status == TIMEOUT:
            self._requeue(index, again=False)
            video.record = {"status": status, "error_message": why, "n_frames": 0,
                            "timestamps": []}  # fmt: skip
            self._maybe_finish(index)
        else:
            self.redone += 1
            self._requeue(index)

    def _check_stalls(self, paused: bool) -> None:
        now = time.monotonic()
        if paused:  # waiting on the encoders, not on the decoders
            for d in self.decoding:
                d.last = now
        for d in [d for d in self.decoding if now - d.last > self.job.timeout]:
            self.decoding.remove(d)
            self._replace_decoder(d.actor)
            self._give_back(d, f"no progress for {self.job.timeout:g} s", TIMEOUT)

    # -- encoding ---------------------------------------------------------------------------

    def _send(self, batches: list) -> None:
        """Send each batch to the least busy encoder."""
        for batch in batches:
            refs: dict[object, int] = {}  # a decoder item, passed once however many pieces
            spec = [(refs.setdefault(p.source.ref, len(refs)), p.lo, p.n) for p in batch]
            encoder = min(self.encoders, key=lambda e: self.load[id(e)])
            ref = encoder.encode.remote(spec, *refs)
            self.in_flight[ref] = (encoder, batch)
            self.load[id(encoder)] += 1
            self.held += sum(p.n for p in batch)

    def _collect(self, ref) -> None:
        ray = self.ray
        encoder, pieces = self.in_flight.pop(ref)
        self.load[id(encoder)] = self.load.get(id(encoder), 1) - 1
        self.held -= sum(p.n for p in pieces)
        current = [p for p in pieces if self._current(p)]
        try:
            embeddings = ray.get(ref)
        except (ray.exceptions.RayActorError, ray.exceptions.ObjectLostError) as exc:
            # The encoder died, or a decoder died before its frames were stored.
            if getattr(exc, "actor_id", None) == encoder._actor_id.hex():
                self._replace_encoder(encoder)
            for video in sorted({p.video for p in current}):
                self._restart(video, f"encoder lost: {type(exc).__name__}: {exc}")
            return
        except ray.exceptions.RayTaskError as exc:  # e.g. out of memory: these videos fail
            if isinstance(exc.cause, EncoderFidelityError):
                raise exc.cause from None  # the engine cannot be trusted: the run stops
            for p in current:
                video = self.videos[p.video]
                video.error = f"encoding failed: {exc.cause!r}"
                video.pending -= p.n
                self._maybe_finish(p.video)
            return
        lo = 0
        for p in pieces:
            if self._current(p):
                video = self.videos[p.video]
                video.parts[p.offset] = embeddings[lo : lo + p.n]
                video.pending -= p.n
                self._maybe_finish(p.video)
            lo += p.n

    def _current(self, piece: Piece) -> bool:
        """Whether ``piece`` is from its video's current decode."""
        video = self.videos.get(piece.video)
        return video is not None and video.attempt == piece.source.attempt

    def _replace_encoder(self, dead) -> None:
        if not any(e is dead for e in self.encoders):
            return  # already replaced (several of its batches failed)
        self.ray.kill(dead)
        fresh = self.encoder_actor.remote(self.job.encoder, self.options.encoder_threads)
        self.encoders = [fresh if e is dead else e for e in self.encoders]
        self.load[id(fresh)] = 0
        # Batches still in flight on the dead encoder fail on their own and are retried.

    # -- caption embeddings (--caption-similarity) -------------------------------------------

    def _ask_text(self, index: int) -> None:
        """Ask the least busy encoder for the caption's embedding, without waiting for it."""
        caption = self.assembly.caption(index) if self.job.caption_similarity else None
        if not caption:
            return
        encoder = min(self.encoders, key=lambda e: self.load[id(e)])
        ref = encoder.encode_text.remote(caption)
        self.videos[index].text_ref = ref
        self.texts[ref] = index

    def _text_done(self, ref) -> None:
        ray = self.ray
        index = self.texts.pop(ref)
        video = self.videos.get(index)
        if video is None or video.text_ref is not ref:
            return
        try:
            video.text = ray.get(ref)
        except (ray.exceptions.RayActorError, ray.exceptions.ObjectLostError) as exc:
            dead = next((e for e in self.encoders if e._actor_id.hex() == getattr(
                exc, "actor_id", None)), None)  # fmt: skip
            if dead is not None:
                self._replace_encoder(dead)
            self._ask_text(index)  # again, on a live encoder
            return
        except ray.exceptions.RayTaskError as exc:
            video.error = f"caption embedding failed: {exc.cause!r}"
        video.text_ref = None
        self._maybe_finish(index)

    def _similarity(self, embeddings: np.ndarray, text: str) -> np.ndarray:
        return cosine_to(embeddings, self._finishing.text)

    # -- finishing --------------------------------------------------------------------------

    def _maybe_finish(self, index: int) -> None:
        video = self.videos[index]
        if video.record is None or video.pending > 0:
            return
        ok = video.record["status"] == SUCCESS and video.parts and video.error is None
        if ok and video.text_ref is not None:
            return  # the caption's embedding is still on its way
        embeddings = np.concatenate([video.parts[k] for k in sorted(video.parts)]) if ok \
            else None  # fmt: skip
        del self.videos[index]
        if video.text_ref is not None:
            self.texts.pop(video.text_ref, None)
        self._finishing = video
        self.assembly.finish(index, video.record, embeddings, video.error)


def _load_error(exc: Exception) -> Exception:
    from .weights import EncoderLoadError

    cause = getattr(exc, "cause", None) or exc
    text = str(cause)
    if isinstance(cause, EncoderLoadError) or "EncoderLoadError" in text:
        return EncoderLoadError(text.split("EncoderLoadError:")[-1].strip())
    return RuntimeError(f"the encoder actor could not start: {text}")
