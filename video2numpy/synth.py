"""Synthetic videos whose pixels say which frame they are.

Frame ``i`` is three horizontal bands whose grey levels are the base-16 digits of ``i``, so
any decoded frame, resized or cropped, tells its own index (:func:`frame_index`). Tests, the
demo and the benchmarks generate their inputs with this, so nothing is downloaded.
"""

from __future__ import annotations

from collections.abc import Sequence
from fractions import Fraction

import numpy as np

_LEVELS = 16
_STEP = 256 // _LEVELS  # grey level of digit d is d * 16 + 8: far apart, survives compression
MAX_INDEX = _LEVELS**3 - 1


def frame_image(index: int, width: int, height: int) -> np.ndarray:
    """The RGB picture of frame ``index``; indices wrap after :data:`MAX_INDEX`."""
    index %= MAX_INDEX + 1
    img = np.empty((height, width, 3), dtype=np.uint8)
    digits = [(index // _LEVELS**2) % _LEVELS, (index // _LEVELS) % _LEVELS, index % _LEVELS]
    for band, digit in enumerate(digits):
        img[band * height // 3 : (band + 1) * height // 3] = digit * _STEP + _STEP // 2
    return img


def frame_index(frame: np.ndarray) -> int:
    """Read the index back from a decoded RGB frame (any size, crop, or the padded mode).

    Reads the median of the central column of each band of the non-black picture area.
    """
    grey = frame.astype(np.int32).mean(axis=2)
    rows = np.flatnonzero(grey.max(axis=1) > 0)  # drop black padding rows, if any
    cols = np.flatnonzero(grey.max(axis=0) > 0)
    if len(rows) == 0:
        return 0
    top, bottom = rows[0], rows[-1] + 1
    mid_col = (cols[0] + cols[-1]) // 2
    height = bottom - top
    digits = []
    for band in range(3):
        lo = top + band * height // 3 + height // 12
        hi = top + (band + 1) * height // 3 - height // 12
        level = float(np.median(grey[lo : max(hi, lo + 1), mid_col]))
        digits.append(int(np.clip(round((level - _STEP // 2) / _STEP), 0, _LEVELS - 1)))
    return digits[0] * _LEVELS**2 + digits[1] * _LEVELS + digits[2]


def write_video(
    path: str,
    n_frames: int = 90,
    fps: float = 30,
    width: int = 320,
    height: int = 240,
    codec: str = "libx264",
    frame_times: Sequence[float] | None = None,
    gop: int = 30,
    bframes: bool = True,
    audio: bool = False,
    texture: bool = False,
    display: tuple[int, bool, bool] = (0, False, False),
    marker: bool = False,
) -> None:
    """Write a video of ``n_frames`` index-coded frames.

    ``frame_times`` (seconds, increasing) makes a variable-frame-rate video; otherwise frames
    are ``1 / fps`` apart. ``fps`` may be fractional (``30000 / 1001``). H.264 gets B-frames by
    default, as real footage does, so decoders must reorder and skip correctly. ``texture``
    fills the picture with a moving, camera-like texture (only the top-left corner keeps the
    index bands), so that benchmarks decode realistic bitstreams rather than flat colours.

    ``display``: ``(degrees counter-clockwise, hflip, vflip)`` of a display matrix, as phones
    write it: the picture is stored turned the other way, so that a player shows the
    ``width`` x ``height`` index-coded frames upright (a rotation or one flip, not both).
    ``marker`` puts a white square in the top-left corner of the picture as shown, so that a
    mirror or a half turn shows too.
    """
    import av

    rate = Fraction(fps).limit_denominator(1001)
    degrees, hflip, vflip = display
    if degrees % 90 or (degrees % 360 and (hflip or vflip)) or (hflip and vflip):
        raise ValueError("display: a multiple of 90 degrees, or one flip")
    turns = (degrees // 90) % 4
    stored = (height, width) if turns % 2 else (width, height)
    with av.open(path, "w") as container:
        stream = container.add_stream(codec, rate=rate)
        stream.width, stream.height = stored
        if display != (0, False, False):
            stream.set_display_rotation(degrees, hflip=hflip, vflip=vflip)
        stream.pix_fmt = "yuv420p"
        options = {"g": str(gop)}
        if codec == "libx264":
            options.update(crf="18", preset="veryfast", bf="3" if bframes else "0")
        elif codec.startswith("libvpx"):
            options.update(crf="20", **{"b:v": "0", "deadline": "realtime", "cpu-used": "8"})
        stream.options = options
        time_base = Fraction(1, 1000) if frame_times is not None else 1 / rate
        stream.codec_context.time_base = time_base
        astream = container.add_stream("aac", rate=16000, layout="mono") if audio else None
        scene = _texture(width, height) if texture else None
        for i in range(n_frames):
            picture = frame_image(i, width, height)
            if scene is not None:
                corner = picture[: height // 4, : width // 8].copy()
                picture = np.roll(scene, (i * 3, i * 5), axis=(0, 1))[:height, :width]
                picture[: height // 4, : width // 8] = corner
            if marker:
                side = max(2, min(width, height) // 6)
                picture[:side, :side] = 255
            # Stored turned clockwise (the player turns it back) or mirrored (its own inverse).
            picture = np.rot90(picture, -turns)
            picture = picture[:, ::-1] if hflip else picture[::-1] if vflip else picture
            frame = av.VideoFrame.from_ndarray(np.ascontiguousarray(picture), format="rgb24")
            seconds = frame_times[i] if frame_times is not None else i / rate
            frame.pts = int(round(Fraction(seconds) / time_base))
            frame.time_base = time_base
            for packet in stream.encode(frame):
                container.mux(packet)
        for packet in stream.encode():
            container.mux(packet)
        if astream is not None:
            _write_silence(container, astream, n_frames / float(rate))


def _texture(width: int, height: int) -> np.ndarray:
    """Smooth random colour field with fine grain, larger than the frame so it can scroll."""
    rng = np.random.default_rng(0)
    coarse = rng.integers(0, 256, (height // 16 + 2, width // 16 + 2, 3)).astype(np.float32)
    field = np.repeat(np.repeat(coarse, 16, axis=0), 16, axis=1)[: height + 32, : width + 32]
    grain = rng.normal(0, 12, field.shape)
    return np.clip(field + grain, 0, 255).astype(np.uint8)


def write_audio_only(path: str, seconds: float = 1.0) -> None:
    """An audio-only file (no video stream), for the bad-input cases."""
    import av

    with av.open(path, "w") as container:
        stream = container.add_stream("aac", rate=16000, layout="mono")
        _write_silence(container, stream, seconds)


def _write_silence(container, stream, seconds: float) -> None:
    import av

    samples = int(seconds * stream.rate)
    for start in range(0, samples, 1024):
        n = min(1024, samples - start)
        frame = av.AudioFrame.from_ndarray(
            np.zeros((1, n), dtype=np.float32), format="fltp", layout="mono"
        )
        frame.sample_rate = stream.rate
        frame.pts = start
        for packet in stream.encode(frame):
            container.mux(packet)
    for packet in stream.encode():
        container.mux(packet)


def trim_copy(src: str, dest: str, seconds: float) -> None:
    """Cut the first ``seconds`` off ``src`` without re-encoding, as trimming tools do
    (``ffmpeg -ss S -c copy``): packets keep their bytes and are shifted back by ``seconds``,
    so those before the cut get negative times; the MP4 muxer writes an edit list that starts
    at the cut, and readers see the packets the cut frames need as pre-roll (decoded, never
    shown)."""
    import av

    with av.open(src) as source, av.open(dest, "w") as out:
        stream = source.streams.video[0]
        copy = out.add_stream_from_template(stream)
        shift = int(round(Fraction(seconds) / stream.time_base))
        for packet in source.demux(stream):
            if packet.dts is None:
                continue  # the demuxer's flush packet
            packet.pts -= shift
            packet.dts -= shift
            packet.stream = copy
            out.mux(packet)
