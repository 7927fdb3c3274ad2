"""The summary as a video: the selected time ranges of the source, one after the other,
re-encoded (H.264 in mp4; every kept frame decoded, shown upright, and written at the
source's frame rate, so the summary plays at normal speed)."""

from __future__ import annotations

import tempfile
from fractions import Fraction

import numpy as np

from video2numpy.fetch import fetch
from video2numpy.orient import from_frame


def write_summary_video(location: str, ranges: list[tuple[float, float]], path: str) -> dict:
    """Cut ``ranges`` (``[start, end)`` seconds of video time, counted from the first shown
    frame as the dataset's timestamps are) from the video at ``location`` (a path, URL or
    YouTube id) into an mp4 at ``path``. Returns ``{"frames", "seconds", "fps"}`` of what
    was written."""
    import av

    ranges = sorted((float(a), float(b)) for a, b in ranges if b > a)
    if not ranges:
        raise ValueError("no time range to cut: the summary selected no shot")
    with tempfile.TemporaryDirectory() as work, fetch(location, work) as got:
        with av.open(got.path) as source:
            stream = source.streams.video[0]
            rate = stream.average_rate or stream.guessed_rate or Fraction(25)
            rate = Fraction(rate).limit_denominator(1001)
            with av.open(path, "w", format="mp4") as out:
                written = _copy_ranges(source, stream, out, rate, ranges)
    return {"frames": written, "seconds": written / float(rate), "fps": float(rate)}


def _copy_ranges(source, stream, out, rate: Fraction, ranges: list[tuple[float, float]]) -> int:
    import av

    starts = np.array([a for a, _ in ranges])
    ends = np.array([b for _, b in ranges])
    encoder, zero, written, orientation = None, None, 0, None
    for frame in source.decode(stream):
        if frame.time is None:
            continue
        if zero is None:
            zero, orientation = frame.time, from_frame(frame)
        t = frame.time - zero
        k = int(np.searchsorted(starts, t + 1e-9, side="right")) - 1
        if k < 0 or t >= ends[k] - 1e-9:
            if t >= ends[-1]:
                break  # past the last range: nothing more to keep
            continue
        picture = orientation.apply(frame.to_ndarray(format="rgb24"))
        height, width = picture.shape[0] // 2 * 2, picture.shape[1] // 2 * 2  # yuv420p: even
        picture = np.ascontiguousarray(picture[:height, :width])
        if encoder is None:
            encoder = out.add_stream("libx264", rate=rate)
            encoder.width, encoder.height, encoder.pix_fmt = width, height, "yuv420p"
            encoder.options = {"crf": "20", "preset": "veryfast"}
            encoder.codec_context.time_base = 1 / rate
        image = av.VideoFrame.from_ndarray(picture, format="rgb24")
        image.pts, image.time_base = written, 1 / rate
        for packet in encoder.encode(image):
            out.mux(packet)
        written += 1
    if encoder is not None:
        for packet in encoder.encode():
            out.mux(packet)
    return written
