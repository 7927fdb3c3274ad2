"""One lane of the Ray executor: the loop that hands videos to decode actors in shard order,
sends their frames to encoder actors in the batches :mod:`..plan.batching` forms, and writes and
commits shards through the shared :class:`~..commit.assembly.Assembly`. The driver runs one
lane, or each ``--pipelines`` actor runs one (``ray_pipelines.py``)."""

from __future__ import annotations

import dataclasses
import itertools
import time
from collections import deque
from collections.abc import Iterable
from dataclasses import dataclass, field
from typing import NamedTuple

import numpy as np

from video2numpy.status import FAILED_TO_DECODE, SUCCESS, TIMEOUT

from ..commit.assembly import Assembly
from ..commit.ledger import Ledger
from ..models.encoder import EncoderFidelityError, cosine_to
from ..plan.batching import Batcher, Piece
from ..plan.job import EncodeJob
from ..plan.run_file import Plan
from ..plan.shards import Shard
from .ray_actors import Actors, _load_error
from .ray_plan import (
    GROUP_SECONDS,
    HEARTBEAT_SECONDS,
    MAX_GROUP,
    Pools,
    RayOptions,
    same_encoders,
)

PUT_BYTES = 64 << 20  # a tar member goes to a decoder in pieces of this size


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


class Lane:
    """Decoders and encoders driven by one process: hands videos to decoders in shard order,
    sends their frames to the encoders in the batches :mod:`..plan.batching` forms (the local
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
            asked = [r for e in self.encoders for r in (e.describe.remote(),
                                                         e.batch_size.remote())]  # fmt: skip
            answers = ray.get(asked)
            started = list(zip(answers[::2], answers[1::2], strict=True))
        except ray.exceptions.RayActorError as exc:  # the model failed to load: say why
            raise _load_error(exc) from exc
        description, batch_size = same_encoders(started)
        # A replacement must load these weights and encode batches of this size.
        self.encoder_options = dataclasses.replace(
            self.job.encoder, batch_size=batch_size, weights_sha256=description["weights_sha256"]
        )
        return description, batch_size

    def stop(self) -> None:
        """Kill the actors; decoders first remove their scratch folders (a few seconds at
        most: a decoder that does not answer is killed anyway, and a later run on its node
        removes its folder once its process is gone)."""
        closing = [d.close.remote() for d in self.decoders]
        if closing:
            self.ray.wait(closing, num_returns=len(closing), timeout=5.0)
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

    def steps(self, plan: Plan, ledger: Ledger, description: dict, batch_size: int,
              shards: Iterable[Shard] | None = None):  # fmt: skip
        """Encode ``shards`` (the plan's ``todo`` unless given) and commit them through
        ``ledger``; yields, as it goes, how many videos it finished since the last yield."""
        job = self.job
        similarity = self._similarity if job.caption_similarity else None
        self.texts: dict[object, int] = {}  # caption embedding ref -> video
        self.assembly = Assembly(job, plan, ledger, description["embed_dim"], similarity, shards)
        self.frame_options = plan.frames
        self.batch_size = batch_size
        # Frames this lane may hold refs to (decoded, not yet encoded) across all videos.
        self.frames_limit = 4 * batch_size * self.n_encoders
        # A decoder joins the idle ones once it has started: one the cluster cannot place
        # (its CPUs are the encoders') must never be handed videos.
        self.idle: deque = deque()
        self.starting: dict[object, object] = {d.pid.remote(): d for d in self.decoders}
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
                    data.append(self._put_file(source["location"]))  # only the driver has it
                    k = len(data) - 1
                specs.append((video, source, k))
            generator = actor.decode.options(_generator_backpressure_num_objects=2).remote(
                specs, self.frame_options, self.heartbeat, *data
            )
            attempts = {video: self.videos[video].attempt for video in group}
            self.decoding.append(_Decoding(group, attempts, actor, generator))

    def _put_file(self, path: str) -> list:
        """A file's bytes in the object store, in pieces of ``PUT_BYTES``: the driver never
        holds a whole tar member (a video of gigabytes) in its memory."""
        with open(path, "rb") as f:
            return [self.ray.put(piece) for piece in iter(lambda: f.read(PUT_BYTES), b"")]

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
        fresh = self.encoder_actor.remote(self.encoder_options, self.options.encoder_threads)
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
