"""Frame geometry: the one resize done on each decoded frame, then a crop or a pad.

The decoder's scaler resizes and converts to RGB in one pass on the decoded picture (no float
copy); what is left here is integer slicing, which costs nothing next to decoding.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

MODES = ("crop", "pad", "native")


@dataclass(frozen=True)
class Resize:
    """How frames are sized.

    ``crop`` (default): short side to ``size``, then a centred ``size`` x ``size`` crop, as
    CLIP's own preprocessing does. ``pad``: long side to ``size``, the rest padded with black to
    a square, so nothing is cut off. ``native``: frames at the video's own size.
    """

    size: int = 224
    mode: str = "crop"

    def __post_init__(self) -> None:
        if self.mode not in MODES:
            raise ValueError(f"resize mode must be one of {', '.join(MODES)}, got {self.mode!r}")
        if self.mode != "native" and (int(self.size) != self.size or self.size < 1):
            raise ValueError(f"size must be a positive integer, got {self.size!r}")

    def scaled_size(self, width: int, height: int) -> tuple[int, int]:
        """(width, height) to ask the decoder's scaler for, before cropping or padding."""
        if self.mode == "native":
            return width, height
        short, long = min(width, height), max(width, height)
        ratio = self.size / (short if self.mode == "crop" else long)
        other = max(1, round(long * ratio)) if self.mode == "crop" else max(1, round(short * ratio))
        if self.mode == "crop":
            return (self.size, other) if width <= height else (other, self.size)
        return (self.size, other) if width >= height else (other, self.size)

    def output_shape(self, width: int, height: int) -> tuple[int, int, int]:
        """Shape (H, W, 3) of every frame this produces for a source of the given size."""
        if self.mode == "native":
            return height, width, 3
        return self.size, self.size, 3

    def finish(self, frame: np.ndarray) -> np.ndarray:
        """Crop or pad a frame already scaled to :meth:`scaled_size` to its final shape."""
        if self.mode == "native":
            return frame
        if self.mode == "crop":
            return center_crop(frame, self.size)
        return center_pad(frame, self.size)


def center_crop(frame: np.ndarray, size: int) -> np.ndarray:
    """Centre crop, rounding the offset as torchvision's ``CenterCrop`` (and so CLIP) does."""
    h, w = frame.shape[:2]
    top = int(round((h - size) / 2.0))
    left = int(round((w - size) / 2.0))
    return frame[top : top + size, left : left + size]


def center_pad(frame: np.ndarray, size: int) -> np.ndarray:
    """Place the frame in the middle of a black ``size`` x ``size`` canvas."""
    h, w = frame.shape[:2]
    out = np.zeros((size, size, frame.shape[2]), dtype=frame.dtype)
    top, left = (size - h) // 2, (size - w) // 2
    out[top : top + h, left : left + w] = frame
    return out
