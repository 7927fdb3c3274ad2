"""Which frames share an encoder batch: a rule that depends on the shard alone.

On CPUs with AVX-512 (and on GPUs), a frame's embedding depends on the batch it is encoded
in, by an ulp or so: matrix kernels pick their blocking by the batch's size. A resumed shard
starts from its first row, so if batches followed the decoders' timing, or ran on from one
shard into the next, a resumed dataset would differ from an uninterrupted one, and the Ray
executor from the local one. So batches are formed by a fixed rule, whatever the order in
which decoders finish:

- each video's frames, in order, fill whole batches of ``batch_size`` on their own
  (frames ``[0, B)``, ``[B, 2B)``, ...), sent as soon as they are decoded;
- the remainders of the videos of one *group* (``GROUP_VIDEOS`` consecutive rows of a
  shard) are concatenated in row order and cut into batches of ``batch_size`` (a new batch
  also starts where the frame shape changes, as with ``--resize-mode native``).

Batches never span shards or groups, and chunk boundaries do not matter, so every executor
encodes every frame with the same neighbours. A group waits only for its own rows, which
bounds what is held back behind a slow video to ``GROUP_VIDEOS`` remainders.

Rows redone by ``--retry-failed``, and videos decoded again after an actor was lost on Ray,
are batched with the other rows redone beside them, so their bytes may differ by an ulp
from a first run's.

Everything here is plain bookkeeping: the executors give frames as ``(source, lo, n)``
ranges (a numpy array locally, a Ray object reference on Ray) and send the batches it
returns to their encoders.
"""

from __future__ import annotations

from collections.abc import Hashable
from dataclasses import dataclass, field
from typing import NamedTuple

# Rows per group of remainders. Part of what a dataset's bytes depend on (run.json records
# it with the batch size): 32 rows of 8-frame clips fill a GPU batch of 256.
GROUP_VIDEOS = 32


class Piece(NamedTuple):
    """Consecutive frames of one video: frames ``lo .. lo + n`` of ``source``, which are the
    video's frames ``offset .. offset + n``."""

    video: int
    offset: int
    source: object
    lo: int
    n: int
    shape: tuple = ()

    def split(self, k: int) -> tuple[Piece, Piece]:
        head = self._replace(n=k)
        tail = self._replace(offset=self.offset + k, lo=self.lo + k, n=self.n - k)
        return head, tail


Batch = list  # of Piece, in the order their frames go to the encoder


@dataclass
class _Video:
    group: Hashable | None  # None: batched on its own (decoded again, see ``reset``)
    pending: list = field(default_factory=list)  # frames not yet in a whole batch
    sent: int = 0  # frames added so far


@dataclass
class _Group:
    members: list = field(default_factory=list)  # videos, in row order
    closed: bool = False  # no more members will come
    tails: dict = field(default_factory=dict)  # ended video -> its remainder (pieces)
    cursor: int = 0  # members whose remainders are in the stream
    stream: list = field(default_factory=list)  # remainders in row order, not yet sent
    streamed: int = 0  # frames in stream


class Batcher:
    """Forms batches by the rule above. Every method returns the batches it completed."""

    def __init__(self, batch_size: int, group_videos: int = GROUP_VIDEOS) -> None:
        if batch_size < 1 or group_videos < 1:
            raise ValueError("batch size and group size must be >= 1")
        self.batch_size, self.group_videos = batch_size, group_videos
        self.held = 0  # frames given and not yet in a batch (nor dropped)
        self._videos: dict[int, _Video] = {}  # videos still sending frames
        self._groups: dict[Hashable, _Group] = {}
        self._group_of: dict[int, Hashable] = {}  # video -> its group, while the group lasts
        self._open: Hashable | None = None  # the group new rows may still join

    def register(self, video: int, shard: int, row: int) -> list[Batch]:
        """Video ``video`` is row ``row`` of shard ``shard``. Videos are registered in the
        order they are handed out, which is row order within a shard: a row of another group
        closes the groups before it."""
        key = (shard, row // self.group_videos)
        out = []
        if key != self._open:
            out += self._close_open()
            self._open = key
        self._groups.setdefault(key, _Group()).members.append(video)
        self._group_of[video] = key
        self._videos[video] = _Video(key)
        return out

    def close(self) -> list[Batch]:
        """No more videos will be registered."""
        out = self._close_open()
        self._open = None
        return out

    def add(self, video: int, source: object, lo: int, n: int, shape: tuple = ()) -> list[Batch]:
        """The video's next ``n`` frames, in order."""
        state = self._videos[video]
        if n <= 0:
            return []
        state.pending.append(Piece(video, state.sent, source, lo, n, tuple(shape)))
        state.sent += n
        self.held += n
        out = []
        while sum(p.n for p in state.pending) >= self.batch_size:
            batch, state.pending = _take(state.pending, self.batch_size)
            out.append(batch)
        return self._sent(out)

    def end(self, video: int, ok: bool = True) -> list[Batch]:
        """The video has sent all its frames (``ok``), or failed: what it sent and is not in
        a batch yet is dropped."""
        state = self._videos.pop(video)
        tail = state.pending
        if not ok:
            self.held -= sum(p.n for p in tail)
            tail = []
        if state.group is None:
            return self._sent([tail] if tail else [])
        self._groups[state.group].tails[video] = tail
        return self._sent(self._advance(state.group))

    def reset(self, video: int) -> None:
        """The video will be decoded again from its first frame: forget what it sent. If its
        remainder already went into its group's batches, it is batched on its own."""
        state = self._videos.get(video)
        if state is not None:
            self.held -= sum(p.n for p in state.pending)
            state.pending, state.sent = [], 0
            return
        key = self._group_of.get(video)
        group = self._groups.get(key) if key is not None else None
        if group is not None and video in group.tails:  # ended, its remainder still waiting
            self.held -= sum(p.n for p in group.tails.pop(video))
            self._videos[video] = _Video(key)
        else:
            self._videos[video] = _Video(None)

    def drop(self, video: int) -> list[Batch]:
        """The video failed, whether or not it had ended: what of it is not in a batch yet is
        dropped, and its group goes on without it."""
        if video in self._videos:
            return self.end(video, ok=False)
        key = self._group_of.get(video)
        group = self._groups.get(key) if key is not None else None
        if group is None or video not in group.tails:
            return []  # its frames are all in batches already
        self.held -= sum(p.n for p in group.tails[video])
        group.tails[video] = []
        return []

    def _sent(self, batches: list[Batch]) -> list[Batch]:
        self.held -= sum(p.n for batch in batches for p in batch)
        return batches

    def _close_open(self) -> list[Batch]:
        if self._open is None or self._open not in self._groups:
            return []
        self._groups[self._open].closed = True
        return self._sent(self._advance(self._open))

    def _advance(self, key: Hashable) -> list[Batch]:
        """Move ended remainders, in row order, into the group's stream and cut it."""
        group = self._groups[key]
        out = []
        while group.cursor < len(group.members) and group.members[group.cursor] in group.tails:
            for piece in group.tails.pop(group.members[group.cursor]):
                if group.stream and group.stream[0].shape != piece.shape:
                    out.append(group.stream)  # another frame shape starts a batch of its own
                    group.stream, group.streamed = [], 0
                group.stream.append(piece)
                group.streamed += piece.n
            group.cursor += 1
            while group.streamed >= self.batch_size:
                batch, group.stream = _take(group.stream, self.batch_size)
                group.streamed -= self.batch_size
                out.append(batch)
        if group.closed and group.cursor == len(group.members):
            if group.stream:
                out.append(group.stream)
            for video in group.members:
                self._group_of.pop(video, None)
            del self._groups[key]
        return out


def _take(pieces: list[Piece], n: int) -> tuple[list[Piece], list[Piece]]:
    """The first ``n`` frames of ``pieces``, and the rest."""
    head: list[Piece] = []
    rest = list(pieces)
    while n > 0:
        piece = rest.pop(0)
        if piece.n > n:
            piece, remainder = piece.split(n)
            rest.insert(0, remainder)
        head.append(piece)
        n -= piece.n
    return head, rest
