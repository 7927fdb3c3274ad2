"""Decoder backends behind one interface: open, list frame times, decode chosen frames.

Both backends give the same frames for the same request: frames are chosen by
:func:`video2numpy.sampling.select_frames` from each backend's list of presentation times,
and the chosen frames are resized by the decoder's own scaler (bicubic) in one pass.

PyAV is exact and fast for sparse sampling: a demux-only pass lists every frame's timestamp
without decoding; decoding then seeks to the keyframe before each far-away target and asks the
decoder to skip non-reference frames on every packet except the targets' own. No frame
references a non-reference frame, so the frames returned are exactly the frames asked for.

Raw elementary streams (``.h264``, ``.hevc``, ``.m2v``, ...) have no container, so no
timestamps: their frames are timed by the stream's frame rate (frame i at i / fps) and matched
by the decoder's output order, and the video's warning says so.
"""

from __future__ import annotations

from collections.abc import Iterator
from dataclasses import dataclass
from fractions import Fraction

import numpy as np

from .orient import UPRIGHT, Orientation, first_frame_orientation, remaining
from .resize import Resize
from .status import DecodeError

BACKENDS = ("auto", "pyav", "decord")
# Decoders that read ``skip_frame`` on every packet. Others (libdav1d reads it once, when the
# codec opens) would skip frames that were asked for, so they decode every frame.
_SKIP_FRAME_CODECS = frozenset({"h264", "hevc", "mpeg1video", "mpeg2video", "mpeg4"})
# How decord (0.6) turns a picture whose display matrix has FFmpeg angle theta.
_DECORD_TURNS = {90: ("clock",), 180: ("hflip", "vflip"), 270: ("cclock",)}
# AVFMT_NOTIMESTAMPS (libavformat/avformat.h): the format stores no timestamps. FFmpeg's raw
# demuxers (h264, hevc, mpegvideo, ...) set it; what they give is their parser's guess, which
# for MPEG-1/2 with B-frames does not match the decoder's frames.
_AVFMT_NOTIMESTAMPS = 0x80


@dataclass
class VideoMeta:
    """What is known about a video after opening it, before decoding any frame."""

    width: int
    height: int
    source_fps: float
    duration: float
    n_source_frames: int
    codec: str
    orientation: Orientation = UPRIGHT  # width and height are as shown, after it

    def as_dict(self) -> dict:
        return {
            "width": self.width,
            "height": self.height,
            "rotation": self.orientation.rotation,
            "mirrored": self.orientation.mirrored,
            "source_fps": round(self.source_fps, 6),
            "duration": round(self.duration, 6),
            "n_source_frames": self.n_source_frames,
            "codec": self.codec,
        }


def resolve_backend(backend: str) -> str:
    """The backend ``auto`` stands for: PyAV, which the decode benchmark shows faster for
    every sampling mode here (bench/decode.py), and which decodes every codec FFmpeg does."""
    if backend not in BACKENDS:
        raise ValueError(f"backend must be one of {', '.join(BACKENDS)}, got {backend!r}")
    return "pyav" if backend == "auto" else backend


def open_video(path: str, backend: str = "auto", threads: int = 1) -> PyAVVideo | DecordVideo:
    """Open a local video file with the chosen backend; raises :class:`DecodeError`."""
    backend = resolve_backend(backend)
    if backend == "decord":
        probe = _probe(path)
        if not (probe.preroll or probe.untimed or probe.damaged):
            return DecordVideo(path, threads=threads, probe=probe)
        # decord lists an edit list's pre-roll frames as frames and then indexes them
        # inconsistently (sequential reads skip them, seeks do not), cannot open raw streams
        # (no duration), and fails a whole file cut short or damaged (its error splitting
        # NAL units is fatal) where PyAV keeps the frames before the damage: PyAV decodes
        # such files.
    return PyAVVideo(path, threads=threads)


class PyAVVideo:
    """A video opened with PyAV. ``frame_times`` are exact, from packet timestamps."""

    backend = "pyav"

    def __init__(self, path: str, threads: int = 1) -> None:
        import av

        self.path = path
        self.threads = threads
        self.missing = 0  # sampled frames the decoder could not produce (corrupt data)
        self.packets_fed = 0  # packets given to the decoder: what seeking saves shows here
        corrupt: list[int] = []
        try:
            with av.open(path, metadata_errors="ignore") as container:
                if not container.streams.video:
                    raise DecodeError("no video stream in the file (audio-only or not a video)")
                stream = container.streams.video[0]
                ctx = stream.codec_context
                if not ctx.width or not ctx.height:
                    raise DecodeError("the video stream has no picture size (corrupt header?)")
                self.time_base = stream.time_base or Fraction(1, 1_000_000)
                origin = container.start_time
                self._origin = (
                    int(Fraction(origin, 1_000_000) / self.time_base) if origin is not None else 0
                )
                dec_pts, keyframe, shown = [], [], []
                for packet in container.demux(stream):
                    if packet.size == 0:
                        continue  # the demuxer's flush packet
                    # None in a raw stream: see ``untimed`` below.
                    dec_pts.append(packet.pts if packet.pts is not None else packet.dts)
                    keyframe.append(packet.is_keyframe)
                    # Pre-roll before an edit list's start: decoded for reference, never shown.
                    # A packet the demuxer found corrupt (a file cut mid-packet) is no frame.
                    shown.append(not packet.is_discard and not packet.is_corrupt)
                    if packet.is_corrupt:
                        corrupt.append(len(dec_pts) - 1)
                untimed = _untimed(container, None in dec_pts)
                nominal = _nominal_rate(stream) if untimed else None  # (rate, its source)
                rate = nominal[0] if nominal else stream.average_rate or stream.guessed_rate
                codec = ctx.name
                width, height = ctx.width, ctx.height
                reorders = bool(ctx.has_b_frames)
                orientation = first_frame_orientation(container, stream) if any(shown) else UPRIGHT
        except DecodeError:
            raise
        except Exception as exc:  # av raises many error types for non-videos
            raise DecodeError(f"cannot open as a video: {exc}") from exc
        if not any(shown):
            raise DecodeError("the video stream has no frames")

        if untimed:  # frame i is shown at i / rate; decode positions stand in for times
            self.time_base, self._origin = 1 / rate, 0
            dec_pts = list(range(len(dec_pts)))
        # Packets in decode order; frame times are the sorted presentation times of the shown.
        self._dec_pts = np.asarray(dec_pts, dtype=np.int64)
        self._key = np.asarray(keyframe, dtype=bool)
        if not self._key.any():
            self._key[0] = True  # some streams flag no keyframe; decoding from 0 still works
        self.pts = np.unique(self._dec_pts[np.asarray(shown, dtype=bool)])
        if untimed:
            self.pts = np.arange(len(self.pts))  # the n-th frame out is the n-th shown
        # Built once per video: per-call structures over every packet made long videos
        # quadratic. Decode position of each pts, and the last keyframe at or before each.
        self._by_pts = np.argsort(self._dec_pts, kind="stable")
        self._last_key = np.maximum.accumulate(np.where(self._key, np.arange(len(self._key)), 0))
        # Containers such as AVI store decode-order timestamps: with B-frames, packet pts are
        # then increasing in decode order and a decoded frame's pts is not its own. Frames are
        # matched by their output order instead (every frame decoded, from the start).
        # Raw streams have no times of their own to match by.
        self._by_order = untimed or (reorders and bool(np.all(np.diff(self._dec_pts) > 0)))
        self._skips = codec in _SKIP_FRAME_CODECS and not self._by_order
        self.frame_times = (self.pts - self._origin).astype(np.float64) * float(self.time_base)
        fps, self.end_time = _rate_and_end(self.frame_times, float(rate) if rate else 0.0)
        self.orientation = orientation
        width, height = orientation.displayed_size(width, height)
        self.meta = VideoMeta(width, height, fps, self.end_time, len(self.pts), codec, orientation)
        corrupt = [int(self._dec_pts[i]) for i in corrupt]
        corrupted = _corrupt_warning(corrupt, self._origin, self.time_base, self.end_time)
        derived = _derived_warning(*nominal) if nominal else None
        self.warning = _join(derived, corrupted, _angle_warning(orientation))

    def iter_frames(
        self, indices: np.ndarray, resize: Resize, chunk_frames: int = 64
    ) -> Iterator[tuple[np.ndarray, np.ndarray]]:
        """Yield ``(frames, times)`` chunks for ``indices`` (sorted indices into frame_times).

        One decoding pass serves every chunk, so the cost is linear in the video's length."""
        indices = np.asarray(indices, dtype=np.int64)
        # Each target is decoded once, even when num_frames repeats it.
        targets, repeats = np.unique(self.pts[indices], return_counts=True)
        self.missing = 0
        retry = True
        decoded = self._decode_targets(targets, resize, allow_seek=True)
        ahead: tuple[int, np.ndarray] | None = None
        # Chunk by chunk, so memory holds one chunk of frames however long the video is.
        for lo in range(0, len(targets), chunk_frames):
            part, counts = targets[lo : lo + chunk_frames], repeats[lo : lo + chunk_frames]
            got: dict[int, np.ndarray] = {}
            while True:
                if ahead is None:
                    ahead = next(decoded, None)
                if ahead is None or ahead[0] > part[-1]:
                    break  # the pass is past this chunk: what is missing was never produced
                got[ahead[0]] = ahead[1]
                ahead = None
            lost = np.asarray([t for t in part if int(t) not in got], dtype=np.int64)
            if len(lost) and retry:  # a seek that landed late, or corrupt data: decode plainly
                found = dict(self._decode_targets(lost, resize, allow_seek=False))
                got.update(found)
                retry = bool(found)  # nothing recovered means corruption: do not retry again
            frames, times = [], []
            for pts, count in zip(part, counts, strict=True):
                frame = got.get(int(pts))
                if frame is None:
                    self.missing += int(count)
                    continue
                frames.extend([frame] * int(count))
                times.extend([float((int(pts) - self._origin) * self.time_base)] * int(count))
            if frames:
                yield np.stack(frames), np.asarray(times)

    def _start_keyframe(self, pts: int) -> int:
        """Decode index of the keyframe to start from for the frame shown at ``pts``."""
        position = int(self._by_pts[np.searchsorted(self._dec_pts, pts, sorter=self._by_pts)])
        k = int(self._last_key[position])
        # A frame shown before its keyframe (open GOP) needs the GOP before it.
        if pts < self._dec_pts[k] and k > 0:
            k = int(self._last_key[k - 1])
        return k

    def _position(self, pts: int, default: int) -> int:
        """Decode index of the packet with ``pts`` (``default`` if there is none)."""
        i = int(np.searchsorted(self._dec_pts, pts, sorter=self._by_pts))
        if i < len(self._by_pts) and self._dec_pts[self._by_pts[i]] == pts:
            return int(self._by_pts[i])
        return default

    def _decode_targets(
        self, targets: np.ndarray, resize: Resize, allow_seek: bool
    ) -> Iterator[tuple[int, np.ndarray]]:
        """Yield ``(pts, frame)`` for each target pts that decodes, in presentation order."""
        if len(targets) == 0:
            return
        if self._by_order:
            yield from self._decode_in_order(targets, resize)
            return
        import av

        target_set = {int(t) for t in targets}
        scaled = resize.scaled_size(self.meta.width, self.meta.height)
        with av.open(self.path, metadata_errors="ignore") as container:
            stream = container.streams.video[0]
            stream.thread_type = "SLICE"
            stream.thread_count = self.threads
            ctx = stream.codec_context
            i, pos = 0, -1  # next target; decode index of the last packet fed
            sought = -1  # the keyframe last sought: a seek that lands early is not redone
            while i < len(targets):
                need = self._start_keyframe(int(targets[i]))
                if allow_seek and need > pos + 1 and need > sought:
                    container.seek(int(self._dec_pts[need]), stream=stream, backward=True)
                    sought, pos = need, need - 1
                jump = False
                for packet in container.demux(stream):
                    ts = packet.pts if packet.pts is not None else packet.dts
                    self.packets_fed += 1
                    if ts is not None and packet.size:
                        pos = self._position(int(ts), pos)
                        if self._skips:  # only decoders that read skip_frame per packet
                            ctx.skip_frame = "DEFAULT" if int(ts) in target_set else "NONREF"
                    elif self._skips:
                        ctx.skip_frame = "DEFAULT"  # the flush packet at the end of the stream
                    try:
                        frames = packet.decode()
                    except av.error.FFmpegError:
                        continue  # corrupt packet: its frame is reported missing, not fatal
                    delivered = i
                    for frame in frames:
                        if frame.pts is None:
                            continue
                        while i < len(targets) and targets[i] < frame.pts:
                            i += 1  # a target the decoder never produced
                        if i < len(targets) and targets[i] == frame.pts:
                            yield int(frame.pts), _to_rgb(frame, scaled, resize, self.orientation)
                            i += 1
                    if i >= len(targets):
                        break
                    next_key = self._start_keyframe(int(targets[i]))
                    if allow_seek and i > delivered and next_key > pos + 1 and next_key > sought:
                        jump = True
                        break
                if not jump:
                    break  # end of stream: whatever is left was not in the file

    def _decode_in_order(
        self, targets: np.ndarray, resize: Resize
    ) -> Iterator[tuple[int, np.ndarray]]:
        """Every frame from the start; the n-th frame out is the n-th in presentation order."""
        import av

        wanted = {int(t) for t in targets}
        last = int(targets[-1])
        scaled = resize.scaled_size(self.meta.width, self.meta.height)
        with av.open(self.path, metadata_errors="ignore") as container:
            stream = container.streams.video[0]
            stream.thread_type = "SLICE"
            stream.thread_count = self.threads
            n = 0
            for packet in container.demux(stream):
                self.packets_fed += 1
                try:
                    frames = packet.decode()
                except av.error.FFmpegError:
                    continue
                for frame in frames:
                    if n >= len(self.pts):
                        return
                    pts = int(self.pts[n])
                    n += 1
                    if pts in wanted:
                        yield pts, _to_rgb(frame, scaled, resize, self.orientation)
                    if pts >= last:
                        return


def _to_rgb(frame, scaled: tuple[int, int], resize: Resize, orientation: Orientation) -> np.ndarray:
    """Scale (to the stored picture's size that gives ``scaled`` once turned), turn upright,
    then crop or pad: the scaler works on the picture as stored, the crop on it as shown."""
    width, height = orientation.stored_size(*scaled)
    rgb = frame.to_ndarray(width=width, height=height, format="rgb24", interpolation="BICUBIC")
    return np.ascontiguousarray(resize.finish(orientation.apply(rgb)))


class DecordVideo:
    """A video opened with decord. ``frame_times`` come from decord's own index."""

    backend = "decord"

    def __init__(self, path: str, threads: int = 1, probe: _Probe | None = None) -> None:
        try:
            import decord
        except ImportError as exc:
            raise DecodeError(
                "the decord backend needs the decord package (pip install decord; x86-64 only);"
                " or use --backend pyav"
            ) from exc
        self.path = path
        self.threads = threads
        self.missing = 0  # decord raises rather than dropping frames
        self._decord = decord
        p = probe or _probe(path)
        width, height, codec, orientation = p.width, p.height, p.codec, p.orientation
        self.warning = p.warning
        # decord turns frames by the matrix's angle itself and ignores its mirrors: what is
        # left to do here completes it (tested for every turn and mirror).
        done = _DECORD_TURNS.get(orientation.theta, ()) if orientation.steps else ()
        self._left = remaining(orientation, done)
        self.orientation = orientation
        width, height = orientation.displayed_size(width, height)
        self._size = (width, height)  # as shown
        try:
            reader = decord.VideoReader(path, ctx=decord.cpu(0), num_threads=threads)
            n = len(reader)
            stamps = reader.get_frame_timestamp(range(n)) if n else np.zeros((0, 2))
            fps = float(reader.get_avg_fps())
            del reader
        except Exception as exc:  # decord raises DECORDError or RuntimeError
            raise DecodeError(f"decord cannot open the video: {exc}") from exc
        if n == 0:
            raise DecodeError("the video stream has no frames")
        self.frame_times = np.asarray(stamps[:, 0], dtype=np.float64)
        fps, self.end_time = _rate_and_end(self.frame_times, fps)
        self.meta = VideoMeta(width, height, fps, self.end_time, n, codec, orientation)

    def iter_frames(
        self, indices: np.ndarray, resize: Resize, chunk_frames: int = 64
    ) -> Iterator[tuple[np.ndarray, np.ndarray]]:
        indices = np.asarray(indices, dtype=np.int64)
        if len(indices) == 0:
            return
        # decord scales its own output (turned by the angle): the size before what is left.
        width, height = self._left.stored_size(*resize.scaled_size(*self._size))
        try:
            reader = self._decord.VideoReader(
                self.path,
                ctx=self._decord.cpu(0),
                width=width,
                height=height,
                num_threads=self.threads,
            )
        except Exception as exc:
            raise DecodeError(f"decord cannot open the video: {exc}") from exc
        for lo in range(0, len(indices), chunk_frames):
            part = indices[lo : lo + chunk_frames]
            try:
                batch = reader.get_batch(part.tolist()).asnumpy()
            except Exception as exc:
                raise DecodeError(f"decord failed to decode frames: {exc}") from exc
            frames = np.stack([resize.finish(self._left.apply(f)) for f in batch])
            yield frames, self.frame_times[part]


def _corrupt_warning(
    corrupt: list[int], origin: int, time_base: Fraction, end_time: float
) -> str | None:
    """What to tell about packets the demuxer marked corrupt: at the end, most often a file
    cut short (an interrupted download or copy), which otherwise reads as a shorter video."""
    if not corrupt:
        return None
    first = float((min(corrupt) - origin) * time_base)
    return (
        f"the file looks truncated or damaged: {len(corrupt)} corrupt packet(s) from"
        f" {first:.3f} s on; frames up to {end_time:.3f} s are kept (fetch the file again"
        " to get the rest)"
    )


def _angle_warning(orientation: Orientation) -> str | None:
    if orientation.unsupported is None:
        return None
    return (
        f"the display matrix asks for a rotation of {orientation.unsupported:g} degrees, not a"
        " multiple of 90: frames are as stored"
    )


def _untimed(container, packet_without_time: bool) -> bool:
    """Whether the stream's frames have no timestamps of their own: a raw elementary stream
    (the format stores none), or packets that carry neither pts nor dts."""
    return bool(container.format.flags & _AVFMT_NOTIMESTAMPS) or packet_without_time


def _nominal_rate(stream) -> tuple[Fraction, str]:
    """The frame rate that times an untimed stream, and where it comes from. FFmpeg's guess
    reads the bitstream's timing (H.264/HEVC VUI, an MPEG sequence header); ``average_rate``
    of a raw stream is only the demuxer's assumed 25 fps. Without either, 25, as FFmpeg does."""
    stated = stream.codec_context.framerate
    rate = stream.guessed_rate or stated
    if rate and rate > 0:
        return Fraction(rate), "its bitstream" if stated and rate == stated else "FFmpeg's guess"
    return Fraction(25), "assumed: the bitstream states none"


def _derived_warning(rate: Fraction, source: str) -> str:
    return (
        "the stream has no timestamps of its own (a raw elementary stream): frame times are"
        f" derived from its frame rate, {float(rate):g} fps ({source}): frame i at"
        f" i / {float(rate):g} s"
    )


def _join(*warnings: str | None) -> str | None:
    return "; ".join(w for w in warnings if w) or None


def _rate_and_end(times: np.ndarray, rate: float) -> tuple[float, float]:
    """The frame rate (the container's, else from the frame times) and the time the last frame
    stops being shown (its time plus the typical frame interval)."""
    interval = float(np.median(np.diff(times))) if len(times) > 1 else 0.0
    fps = rate or (1.0 / interval if interval else 0.0)
    return fps, float(times[-1]) + (interval or (1.0 / fps if fps else 0.0))


@dataclass
class _Probe:
    """What decord needs to know from FFmpeg before (and instead of) opening a file."""

    width: int  # picture size as stored
    height: int
    codec: str
    preroll: bool  # packets an edit list marks as decoded but never shown
    untimed: bool  # frames without timestamps of their own (a raw elementary stream)
    damaged: bool  # packets the demuxer found corrupt (a file cut short, most often)
    warning: str | None  # corrupt packets, an angle not applied
    orientation: Orientation  # from the first frame: the only decoding done here


def _probe(path: str) -> _Probe:
    import av

    try:
        with av.open(path, metadata_errors="ignore") as container:
            if not container.streams.video:
                raise DecodeError("no video stream in the file (audio-only or not a video)")
            stream = container.streams.video[0]
            ctx = stream.codec_context
            preroll, corrupt, last, timeless = False, [], 0, False
            for p in container.demux(stream):
                timeless |= bool(p.size) and p.pts is None and p.dts is None
                if p.size and p.pts is not None:
                    preroll |= p.is_discard
                    last = max(last, p.pts)
                    if p.is_corrupt:
                        corrupt.append(p.pts)
            shown_end = float(last * stream.time_base)
            orientation = first_frame_orientation(container, stream)
            warning = _join(_corrupt_warning(corrupt, 0, stream.time_base, shown_end),
                            _angle_warning(orientation))  # fmt: skip
            untimed = _untimed(container, timeless)
            return _Probe(ctx.width, ctx.height, ctx.name, preroll, untimed, bool(corrupt),
                          warning, orientation)  # fmt: skip
    except DecodeError:
        raise
    except Exception as exc:
        raise DecodeError(f"cannot open as a video: {exc}") from exc
