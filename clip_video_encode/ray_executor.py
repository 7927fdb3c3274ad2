"""The Ray executor: decode actors on CPUs, encoder actors on GPUs (or CPUs), and the driver
assembling and committing shards, exactly as the local executor does.

Why Ray core actors rather than Ray Data: a shard must hold each of its input rows exactly
once, in input order, and be committed only when complete, so that shards are the same as the
local executor's and a rerun resumes at the first uncommitted shard. Here the driver owns that
bookkeeping (the same :class:`Assembly` the local executor uses): it hands videos to decode
actors in shard order, batches their frames across videos to encoder actors, and writes each
finished video. Ray Data's ``map_batches`` would re-block and reorder rows and retry failed
tasks on its own terms, leaving exactly-once per shard to be rebuilt on top of it.

Frames stay in the object store. A decode actor's ``decode`` is a streaming generator that
yields, per chunk, a small header and then the frames; the driver reads headers only and
passes the frame refs to an encoder actor, which reads them without a copy. Backpressure: the
driver stops pulling from decoders while the frames it holds for encoding reach a limit, and a
decoder's generator pauses after two items nobody pulled, so a slow encoder never lets decoders
fill memory.

Faults: a decoder or encoder that dies (its process killed, its node lost) costs re-doing the
videos it held: they are decoded again from scratch by a fresh actor, and late results of the
old attempt are ignored. A video that takes down its decoder ``max_attempts`` times is recorded
as failed. A driver that dies leaves uncommitted shards, which a rerun redoes.
"""

from __future__ import annotations

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

from .assembly import Assembly
from .dataset import EncodeJob, Input, open_destination, prepare_run, read_input, record_in_run
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
    local_cpus: int | None = None  # CPUs of a Ray instance started here (None: all)


class DecodeWorker:
    """Fetches, decodes and samples videos (a Ray actor, one CPU)."""

    def __init__(self) -> None:
        # Downloads and tar members live here only while their video is decoded.
        self.workdir = tempfile.mkdtemp(prefix="clip-video-encode-decode-")

    def pid(self) -> int:
        return os.getpid()

    def decode(self, video: int, source: dict, options: FrameOptions, data: bytes | None = None):
        """Yields ``{"n": k}`` then the (k, H, W, 3) frames, per chunk; lastly
        ``{"n": 0, "record": ...}``. ``data``: the video's bytes, for a file only the driver
        can read (a webdataset tar member)."""
        path = None
        if data is not None:
            suffix = os.path.splitext(source["location"])[1]
            path = os.path.join(self.workdir, f"member-{video}{suffix}")
            with open(path, "wb") as f:
                f.write(data)
            source = {**source, "location": path}
        try:
            for chunk in sample_video(Task.from_source(video, source), options, self.workdir):
                if len(chunk.frames):
                    yield {"n": len(chunk.frames), "shape": chunk.frames.shape[1:]}
                    yield chunk.frames
                if chunk.record is not None:
                    yield {"n": 0, "record": chunk.record}
        finally:
            if path:
                os.remove(path)


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

    def encode(self, *frames: np.ndarray) -> np.ndarray:
        return self.encoder.encode(frames[0] if len(frames) == 1 else np.concatenate(frames))

    def encode_text(self, text: str) -> np.ndarray:
        return self.encoder.encode_text([text])[0]


@dataclass
class _Video:
    source: dict
    attempt: int = 0
    parts: list = field(default_factory=list)  # embeddings per chunk, None until encoded
    pending: int = 0  # chunks sent to an encoder, not back yet
    record: dict | None = None
    error: str | None = None
    text: np.ndarray | None = None  # the caption's text embedding (--caption-similarity)
    text_ref: object = None  # that embedding, on its way from an encoder


class _Piece(NamedTuple):
    """One chunk of frames on its way to an encoder."""

    video: int
    attempt: int  # the video's decode attempt it came from (later attempts supersede it)
    part: int  # its position among the video's chunks
    ref: object  # the frames, in the object store
    n: int  # frames
    shape: tuple  # one frame's (H, W, 3): a batch holds one shape


@dataclass
class _Decoding:
    video: int
    attempt: int
    actor: object
    generator: object
    frames_next: int = 0  # frames in the next item (after a chunk's header); 0: a header
    shape: tuple = ()  # their frame shape
    last: float = field(default_factory=time.monotonic)


def encode_dataset_ray(
    job: EncodeJob, options: RayOptions | None = None, progress: bool | None = None
) -> dict:
    """Run ``job`` on a Ray cluster; returns the run's summary, as the local executor does."""
    import ray

    options = options or RayOptions()
    read = read_input(job)  # before any actor: unusable input fails at once, nothing created
    started_here = not ray.is_initialized()
    if started_here:
        address = options.address or os.environ.get("RAY_ADDRESS")
        init = {"address": address} if address else {"num_cpus": options.local_cpus}
        ray.init(**init, log_to_driver=False, configure_logging=False)
    try:
        return _Run(job, options, progress, read).go()
    finally:
        if started_here:
            ray.shutdown()


class _Run:
    def __init__(
        self, job: EncodeJob, options: RayOptions, progress: bool | None, read: Input
    ) -> None:
        import ray

        self.read = read
        self.ray, self.job, self.options = ray, job, options
        resources = ray.cluster_resources()
        gpus = int(resources.get("GPU", 0))
        cpus = int(resources.get("CPU", 1))
        # Pool sizes follow the resources present now; on an autoscaling cluster, name them
        # (--decoders, --encoders, --encoder-gpus) and the autoscaler adds the nodes.
        gpu_each = options.encoder_gpus if options.encoder_gpus is not None else min(gpus, 1)
        self.n_encoders = options.encoders or (int(gpus // gpu_each) if gpu_each else 1)
        encoder_cpus = 0 if gpu_each else options.encoder_cpus
        # Leave the encoders their CPUs: decoders asking for every CPU would starve them.
        self.n_decoders = options.decoders or max(1, int(cpus - self.n_encoders * encoder_cpus))
        self.encoder_actor = ray.remote(EncodeWorker).options(
            num_gpus=gpu_each, num_cpus=encoder_cpus, max_concurrency=1
        )
        self.decoder_actor = ray.remote(DecodeWorker).options(num_cpus=1)
        self.progress = progress
        self._finishing: _Video | None = None  # the video being written (for its caption)

    def go(self) -> dict:
        ray, job = self.ray, self.job
        threads = self.options.encoder_threads
        self.encoders = [self.encoder_actor.remote(job.encoder, threads) for _ in
                         range(self.n_encoders)]  # fmt: skip
        # Decoders start while the encoders load the model (frame options come per video).
        self.decoders = [self._new_decoder() for _ in range(self.n_decoders)]
        try:
            description, batch_size = ray.get(
                [self.encoders[0].describe.remote(), self.encoders[0].batch_size.remote()]
            )
        except ray.exceptions.RayActorError as exc:  # the model failed to load: say why
            raise _load_error(exc) from exc
        fs, dest = open_destination(job.dest)
        try:
            with Lease(fs, dest, job.lease_seconds) as lease:  # before anything in dest changes
                run = prepare_run(job, description, fs, dest, self.read)
                try:
                    self._encode(run, fs, dest, description, batch_size, lease)
                finally:
                    self._record_fidelity(fs, dest)
        finally:
            for actor in self.decoders + self.encoders:
                ray.kill(actor)
        return {**run["summary"].finish(), "redone": self.redone}

    def _record_fidelity(self, fs, dest: str) -> None:
        """The worst of the encoders' first-batch checks (another engine than torch), in
        ``run.json``."""
        checks = []
        for encoder in self.encoders:
            try:
                checks.append(self.ray.get(encoder.fidelity.remote(), timeout=60))
            except Exception:  # a lost encoder has nothing to say
                continue
        checks = [c for c in checks if c]
        if checks:
            record_in_run(fs, dest, {"fidelity": min(checks, key=lambda c: c["min_cosine"])})

    def _encode(self, run: dict, fs, dest: str, description: dict, batch_size: int, lease):
        job = self.job
        similarity = self._similarity if job.caption_similarity else None
        self.texts: dict[object, int] = {}  # caption embedding ref -> video
        self.assembly = Assembly(job, run, fs, dest, description["embed_dim"], similarity,
                                 guard=lease.check)  # fmt: skip
        self.frame_options = run["frames"]
        self.batch_size = batch_size
        # Frames the driver may hold refs to (decoded, not yet encoded) across all videos.
        self.frames_limit = 4 * batch_size * self.n_encoders
        self.idle = deque(self.decoders)
        self.starting: dict[object, object] = {}  # pid ref -> replacement decoder starting
        self.videos: dict[int, _Video] = {}
        self.queue: deque[int] = deque()  # videos to (re)decode, before new sources
        self.decoding: list[_Decoding] = []
        self.batch: list[_Piece] = []  # frames waiting for a full batch
        self.held = 0  # frames in self.batch and in flight to encoders
        self.in_flight: dict[object, tuple[object, list]] = {}  # ref -> (encoder, pieces)
        self.load = {id(e): 0 for e in self.encoders}
        self.bar = tqdm(total=self.assembly.total, unit="video", desc="encode",
                        disable=None if self.progress is None else not self.progress)  # fmt: skip
        sources = enumerate(self.assembly.sources())
        self.more = True
        self.redone = 0  # decodes started again after an actor or node was lost
        self.began = self.reported = time.monotonic()
        try:
            while (self.more or self.queue or self.decoding or self.batch or self.in_flight
               or self.texts):  # fmt: skip
                self._start_decodes(sources)
                self._step()
        except BaseException:
            self.assembly.abort()
            raise
        finally:
            self.bar.close()
        self.assembly.close()

    # -- decoding ---------------------------------------------------------------------------

    def _new_decoder(self):
        return self.decoder_actor.remote()

    def _start_decodes(self, sources) -> None:
        while self.idle and self.held < self.frames_limit:
            if self.queue:
                video = self.queue.popleft()
            elif self.more:
                try:
                    video, source = next(sources)
                except StopIteration:
                    self.more = False
                    continue
                self.videos[video] = _Video(source)
                self._ask_text(video)
            else:
                return
            state = self.videos[video]
            actor = self.idle.popleft()
            data = None
            if state.source["location"].startswith(self.assembly.scratch):
                with open(state.source["location"], "rb") as f:  # only the driver has it
                    data = self.ray.put(f.read())
            generator = actor.decode.options(_generator_backpressure_num_objects=2).remote(
                video, state.source, self.frame_options, data
            )
            self.decoding.append(_Decoding(video, state.attempt, actor, generator))

    def _step(self) -> None:
        """Wait for the next header, frames or embeddings, and act on it."""
        ray = self.ray
        if not self.decoding and not self.more and not self.queue:
            self._flush(force=True)  # the last frames: no full batch will come
        pulling = self.held < self.frames_limit
        # Finished batches first: ray.wait reports the first ready item of the list.
        waitables = list(self.in_flight) + list(self.starting) + list(self.texts)
        waitables += [d.generator for d in self.decoding] if pulling else []
        if not waitables:
            self._flush(force=True)
            return
        ready, _ = ray.wait(waitables, num_returns=1, timeout=1.0)
        self._check_stalls(paused=not pulling)
        if not ready:
            if not self.more and not self.queue and not any(d.frames_next for d in self.decoding):
                self._flush(force=True)  # the last videos: no full batch will come
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
        video = self.videos[d.video]
        try:
            ref = next(d.generator)
            if d.frames_next:
                n, d.frames_next = d.frames_next, 0
                if video.attempt == d.attempt:
                    video.parts.append(None)
                    video.pending += 1
                    part = len(video.parts) - 1
                    self.batch.append(_Piece(d.video, d.attempt, part, ref, n, d.shape))
                    self.held += n
                    self._flush()
            else:
                header = ray.get(ref)
                if header.get("record") is not None:
                    self._release(d)  # its last item: the actor may take the next video
                    self._decoded(d, header["record"])
                else:
                    d.frames_next, d.shape = header["n"], tuple(header["shape"])
            d.last = time.monotonic()
        except StopIteration:
            if d in self.decoding:
                self._release(d)
        except (ray.exceptions.RayActorError, ray.exceptions.ObjectLostError) as exc:
            self._decoder_died(d, exc)

    def _decoded(self, d: _Decoding, record: dict) -> None:
        video = self.videos[d.video]
        if video.attempt != d.attempt:
            return
        video.record = record
        if record["status"] != SUCCESS:
            self._drop_pieces(d.video)
            video.parts, video.pending = [], 0
        self._maybe_finish(d.video)

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
        """Replace the actor; decode the video again from scratch (or fail it)."""
        self.decoding.remove(d)
        self._replace_decoder(d.actor)
        video = self.videos[d.video]
        if video.attempt != d.attempt or video.record is not None:
            return
        self._restart(d.video, f"decode worker lost: {type(exc).__name__}: {exc}")

    def _restart(self, index: int, why: str, status: str = FAILED_TO_DECODE) -> None:
        video = self.videos[index]
        self._drop_pieces(index)
        video.attempt += 1
        video.parts, video.pending, video.record = [], 0, None
        if video.attempt >= self.options.max_attempts or status == TIMEOUT:
            record = {"status": status, "error_message": why, "n_frames": 0, "timestamps": []}
            video.record = record
            self._maybe_finish(index)
        else:
            self.redone += 1
            self.queue.appendleft(index)

    def _check_stalls(self, paused: bool) -> None:
        now = time.monotonic()
        if paused:  # waiting on the encoders, not on the decoders
            for d in self.decoding:
                d.last = now
        for d in [d for d in self.decoding if now - d.last > self.job.timeout]:
            self.decoding.remove(d)
            self._replace_decoder(d.actor)
            self._restart(d.video, f"no progress for {self.job.timeout:g} s", TIMEOUT)

    # -- encoding ---------------------------------------------------------------------------

    def _flush(self, force: bool = False) -> None:
        """Send the frames gathered so far to the least busy encoder, once a batch is full."""
        while self.batch and (force or sum(p.n for p in self.batch) >= self.batch_size):
            # One frame shape per batch (--resize-mode native gives each video its own).
            shape = self.batch[0].shape
            pieces, n, rest = [], 0, []
            for piece in self.batch:
                if piece.shape == shape and n < self.batch_size:
                    pieces.append(piece)
                    n += piece.n
                else:
                    rest.append(piece)
            self.batch = rest
            encoder = min(self.encoders, key=lambda e: self.load[id(e)])
            ref = encoder.encode.remote(*[p.ref for p in pieces])
            self.in_flight[ref] = (encoder, pieces)
            self.load[id(encoder)] += 1

    def _collect(self, ref) -> None:
        ray = self.ray
        encoder, pieces = self.in_flight.pop(ref)
        self.load[id(encoder)] = self.load.get(id(encoder), 1) - 1
        self.held -= sum(p.n for p in pieces)
        try:
            embeddings = ray.get(ref)
        except (ray.exceptions.RayActorError, ray.exceptions.ObjectLostError) as exc:
            # The encoder died, or a decoder died before its frames were stored.
            if getattr(exc, "actor_id", None) == encoder._actor_id.hex():
                self._replace_encoder(encoder)
            for video in {p.video for p in pieces if self._current(p)}:
                self._restart(video, f"encoder lost: {type(exc).__name__}: {exc}")
            return
        except ray.exceptions.RayTaskError as exc:  # e.g. out of memory: these videos fail
            if isinstance(exc.cause, EncoderFidelityError):
                raise exc.cause from None  # the engine cannot be trusted: the run stops
            for p in pieces:
                if self._current(p):
                    video = self.videos[p.video]
                    video.error = f"encoding failed: {exc.cause!r}"
                    video.pending -= 1
                    self._maybe_finish(p.video)
            return
        lo = 0
        for p in pieces:
            if self._current(p):
                video = self.videos[p.video]
                video.parts[p.part] = embeddings[lo : lo + p.n]
                video.pending -= 1
                self._maybe_finish(p.video)
            lo += p.n

    def _current(self, piece) -> bool:
        video = self.videos.get(piece.video)
        return video is not None and video.attempt == piece.attempt

    def _drop_pieces(self, index: int) -> None:
        kept = [p for p in self.batch if p.video != index]
        self.held -= sum(p.n for p in self.batch if p.video == index)
        self.batch = kept

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
        embeddings = np.concatenate(video.parts) if ok else None
        del self.videos[index]
        if video.text_ref is not None:
            self.texts.pop(video.text_ref, None)
        self._finishing = video
        self.assembly.finish(index, video.record, embeddings, video.error)
        self.bar.update(1)
        self._report()

    def _report(self, every: float = 30.0) -> None:
        """Without a progress bar (a cluster job's log), a line every ``every`` seconds."""
        now = time.monotonic()
        if not self.bar.disable or self.progress is False or now - self.reported < every:
            return
        self.reported = now
        summary, done = self.assembly.summary, self.assembly.finished
        rate = done / max(now - self.began, 1e-9)
        total = f"/{self.assembly.total}" if self.assembly.total is not None else ""
        print(
            f"clip-video-encode: {done}{total} videos ({rate:.2f}/s), shards"
            f" {summary.done_shards}/{summary.todo} written, {self.n_decoders} decoders,"
            f" {self.n_encoders} encoders, {self.redone} redone",
            file=sys.stderr,
            flush=True,
        )


def _load_error(exc: Exception) -> Exception:
    from .weights import EncoderLoadError

    cause = getattr(exc, "cause", None) or exc
    text = str(cause)
    if isinstance(cause, EncoderLoadError) or "EncoderLoadError" in text:
        return EncoderLoadError(text.split("EncoderLoadError:")[-1].strip())
    return RuntimeError(f"the encoder actor could not start: {text}")
