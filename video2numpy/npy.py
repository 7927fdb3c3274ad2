"""A ``.npy`` file written a chunk at a time, for videos too long to hold in memory.

The header is reserved at a fixed size and rewritten with the final shape on close, so the
frame count need not be known in advance. The result is a plain ``.npy`` (``np.load`` and
``mmap_mode`` work); it appears under its name only when complete.
"""

from __future__ import annotations

import os

import numpy as np

_HEADER_BYTES = 128  # magic + version + length + dict, padded; 64-byte aligned data


class NpyWriter:
    def __init__(self, path: str, frame_shape: tuple[int, ...], dtype=np.uint8) -> None:
        self.path = path
        self.frame_shape = tuple(frame_shape)
        self.dtype = np.dtype(dtype)
        self.count = 0
        self._tmp = f"{path}.partial"
        self._file = open(self._tmp, "wb")
        self._file.write(self._header())

    def _header(self) -> bytes:
        shape = (self.count, *self.frame_shape)
        desc = {"descr": np.lib.format.dtype_to_descr(self.dtype), "fortran_order": False}
        text = repr({**desc, "shape": shape}).encode("latin1")
        body_len = _HEADER_BYTES - 10
        if len(text) + 1 > body_len:
            raise ValueError(f"shape {shape} does not fit the reserved npy header")
        text = text + b" " * (body_len - len(text) - 1) + b"\n"
        return b"\x93NUMPY\x01\x00" + body_len.to_bytes(2, "little") + text

    def append(self, frames: np.ndarray) -> None:
        if frames.shape[1:] != self.frame_shape:
            raise ValueError(f"frames of shape {frames.shape[1:]}, expected {self.frame_shape}")
        self._file.write(np.ascontiguousarray(frames, dtype=self.dtype).tobytes())
        self.count += len(frames)

    def close(self) -> None:
        self._file.seek(0)
        self._file.write(self._header())
        self._file.close()
        os.replace(self._tmp, self.path)

    def discard(self) -> None:
        self._file.close()
        os.remove(self._tmp)
