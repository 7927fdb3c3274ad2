"""Frames as a player shows them: the display matrix of phone videos, applied.

Phones store the picture as the sensor saw it and write a display matrix (ISO/IEC 14496-12;
FFmpeg exports it as ``DISPLAYMATRIX`` side data) that says how to turn it: a portrait video
from a phone held upright is stored landscape with "rotate 90 degrees". Decoders return the
stored picture, so without this a large share of real collections comes out sideways.

The matrix is read the way FFmpeg's own command line does for ``-autorotate`` (the default
of every FFmpeg-based player): a rotation that is a multiple of 90 degrees and the flips are
applied as transposes and mirrors, which are exact (no resampling); other angles (never seen
from cameras) are not applied and are reported.
"""

from __future__ import annotations

import math
import struct
from dataclasses import dataclass

import numpy as np


@dataclass(frozen=True)
class Orientation:
    """How to turn a decoded picture upright. ``rotation``: degrees clockwise the stored
    picture is turned to be shown (0, 90, 180, 270); ``mirrored``: then mirrored left-right."""

    rotation: int = 0
    mirrored: bool = False
    steps: tuple[str, ...] = ()  # what is done: "clock", "cclock", "hflip", ... in order
    unsupported: float | None = None  # an angle that is not a multiple of 90 (not applied)
    theta: int = 0  # FFmpeg's rotation angle of the matrix (mirrors aside), for decord

    @property
    def transposes(self) -> bool:
        """Whether width and height swap."""
        return any(s in _TRANSPOSING for s in self.steps)

    def displayed_size(self, width: int, height: int) -> tuple[int, int]:
        return (height, width) if self.transposes else (width, height)

    def stored_size(self, width: int, height: int) -> tuple[int, int]:
        """The stored picture's size that gives ``(width, height)`` once turned."""
        return (height, width) if self.transposes else (width, height)

    def apply(self, frame: np.ndarray) -> np.ndarray:
        """The picture ``(H, W, C)`` as it is shown."""
        for step in self.steps:
            frame = _STEPS[step](frame)
        return np.ascontiguousarray(frame) if self.steps else frame


UPRIGHT = Orientation()

_STEPS = {
    "clock": lambda f: np.rot90(f, -1),  # a quarter turn clockwise
    "cclock": lambda f: np.rot90(f, 1),  # a quarter turn counter-clockwise
    "cclock_flip": lambda f: f.transpose(1, 0, 2),  # counter-clockwise, then upside down
    "clock_flip": lambda f: np.rot90(f, 2).transpose(1, 0, 2),  # clockwise, upside down
    "hflip": lambda f: f[:, ::-1],
    "vflip": lambda f: f[::-1],
}
_TRANSPOSING = {"clock", "cclock", "cclock_flip", "clock_flip"}


def from_matrix(matrix: tuple[int, ...] | list[int]) -> Orientation:
    """The orientation a display matrix (nine 16.16 fixed-point integers) asks for, decided
    as FFmpeg's ``-autorotate`` does (fftools ``get_rotation`` and its transpose choices)."""
    a, b, _, c, d = (x / 65536.0 for x in matrix[:5])
    scale_x, scale_y = math.hypot(a, c), math.hypot(b, d)
    if scale_x == 0 or scale_y == 0:
        return UPRIGHT  # a degenerate matrix: as if there were none
    # av_display_rotation_get is -atan2(b, a); get_rotation negates it again, rounds, wraps.
    theta = float(round(math.degrees(math.atan2(b / scale_y, a / scale_x))))
    theta -= 360 * math.floor(theta / 360 + 0.9 / 360)
    if abs(theta - 90) < 1:
        steps: tuple[str, ...] = ("cclock_flip",) if c > 0 else ("clock",)
    elif abs(theta - 180) < 1:
        steps = tuple(s for s, on in (("hflip", a < 0), ("vflip", d < 0)) if on)
    elif abs(theta - 270) < 1:
        steps = ("clock_flip",) if c < 0 else ("cclock",)
    elif abs(theta) > 1:
        return Orientation(0, a * d - b * c < 0, (), theta)
    else:
        steps = ("vflip",) if d < 0 else ()
    rotation, mirrored = _AS_TURN_AND_MIRROR[steps]
    return Orientation(rotation, mirrored, steps, None, int(theta) % 360)


# Each result as one clockwise turn, then a left-right mirror or not: how the record says it.
_AS_TURN_AND_MIRROR = {
    (): (0, False), ("hflip",): (0, True), ("vflip",): (180, True),
    ("hflip", "vflip"): (180, False), ("clock",): (90, False), ("cclock",): (270, False),
    ("cclock_flip",): (90, True), ("clock_flip",): (270, True),
}  # fmt: skip


def remaining(orientation: Orientation, done: tuple[str, ...]) -> Orientation:
    """What is left to do once ``done`` has been applied to the stored picture (a decoder that
    applies part of the matrix itself): the one turn-and-mirror that completes it."""
    probe = np.arange(6).reshape(2, 3, 1)
    target, got = orientation.apply(probe), Orientation(steps=done).apply(probe)
    for steps, (rotation, mirrored) in _AS_TURN_AND_MIRROR.items():
        if np.array_equal(Orientation(steps=steps).apply(got), target):
            return Orientation(rotation, mirrored, steps)
    raise AssertionError("every turn and mirror is one of the eight")  # never: a group


def from_frame(frame) -> Orientation:
    """The orientation a decoded PyAV frame carries (``DISPLAYMATRIX`` side data, which FFmpeg
    attaches from the container or from the bitstream's own orientation message)."""
    try:
        import av.sidedata.sidedata as sd

        for data in frame.side_data:
            if data.type == sd.Type.DISPLAYMATRIX:
                raw = bytes(data)
                if len(raw) >= 36:
                    return from_matrix(struct.unpack("=9i", raw[:36]))
    except (ImportError, AttributeError, ValueError, struct.error):
        pass
    return UPRIGHT


def first_frame_orientation(container, stream, packets: int = 32) -> Orientation:
    """The orientation of a stream, from its first decoded frame (at most ``packets`` packets
    are decoded; the container is left where it was sought to: seek before reading on)."""
    import av

    fed = 0
    try:
        container.seek(0, stream=stream, backward=True, any_frame=False)
        for packet in container.demux(stream):
            fed += 1
            for frame in packet.decode():
                return from_frame(frame)
            if fed >= packets:
                break
    except (av.error.FFmpegError, ValueError, OSError):
        pass
    return UPRIGHT
