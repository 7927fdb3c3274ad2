"""Image queries, decoded only when their size is known to be sane.

A PNG of a few kilobytes can declare 15000 x 15000 pixels: decoded, it takes gigabytes and
seconds (PIL refuses only past 179 megapixels, with an exception of its own). Its header is
read first (PIL opens lazily) and a picture of more than ``max_pixels`` is refused before a
pixel is decoded; a query is resized to the model's 224 pixels anyway.
"""

from __future__ import annotations

import io
import os

import numpy as np

MAX_PIXELS = 40_000_000  # 40 megapixels: any camera's photo but the largest, 120 MB as RGB


class ImageTooLarge(ValueError):
    """A picture with more pixels than allowed (HTTP 413)."""


def load_image(source: bytes | str, max_pixels: int = MAX_PIXELS) -> np.ndarray:
    """An RGB uint8 array ``(H, W, 3)`` of an image file's bytes or path (the first frame of
    an animation). Raises :class:`ImageTooLarge` beyond ``max_pixels`` and ``ValueError``
    for anything that is not a readable image."""
    from PIL import Image, UnidentifiedImageError

    name = source if isinstance(source, str) else "the upload"
    try:
        opened = Image.open(source if isinstance(source, str) else io.BytesIO(source))
    except Image.DecompressionBombError as exc:  # PIL's own limit, checked on open
        raise ImageTooLarge(
            f"{name} is over the limit of {max_pixels / 1e6:g} megapixels ({exc})"
        ) from exc
    except (UnidentifiedImageError, OSError) as exc:
        if isinstance(source, str) and not os.path.exists(source):
            raise FileNotFoundError(f"{source}: no such file") from exc
        raise ValueError(f"{name}: not an image: {exc}") from exc
    with opened as image:
        width, height = image.size
        if width * height > max_pixels:
            raise ImageTooLarge(
                f"{name} is {width} x {height} pixels ({width * height / 1e6:.0f} megapixels),"
                f" over the limit of {max_pixels / 1e6:g} megapixels: scale it down (the"
                " model sees 224 pixels)"
            )
        try:
            return np.array(image.convert("RGB"))
        except (Image.DecompressionBombError, OSError, ValueError) as exc:
            raise ValueError(f"{name}: not a readable image: {exc}") from exc
