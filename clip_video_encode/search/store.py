"""A search index on disk, one generation at a time.

A long-lived reader (the search server) opens an index once and answers queries from it for
hours, while a command-line query may rebuild the same index after the dataset was encoded
again. Were the files rewritten in place, the reader would score new frames against its old
tables and name the wrong videos. So each build writes a new generation folder
(``_search/g<time>-<random>/``: frames, tables, later the ANN index), complete before it is
renamed into place; ``_search/index.json`` names the current one and is replaced atomically,
last. A reader opens every file of one generation when it starts and keeps them open, so it
stays whole after a newer generation replaces its own and the older folder is removed.
"""

from __future__ import annotations

import contextlib
import json
import os
import re
import secrets
import shutil
import time

import numpy as np

POINTER = "index.json"
GENERATION = re.compile(r"^g[0-9a-f]{16}-[0-9a-f]{6}$")
_PARTIAL = ".partial"
_LOCK = ".lock"
_STALE_PARTIAL_S = 24 * 3600  # a build not finished in a day was killed: its folder goes
# The files of the single-folder layout that came before generations.
LEGACY = ("embeddings.npy", "embeddings.npy.partial", "frames.parquet", "videos.parquet",
          "ann.faiss", "ann.faiss.partial")  # fmt: skip


def new_generation() -> str:
    """A name no other build takes: the time (sortable) and a random part."""
    return f"g{time.time_ns():016x}-{secrets.token_hex(3)}"


def read_pointer(folder: str) -> dict | None:
    """The current generation's ``index.json``, or None when there is none."""
    try:
        with open(os.path.join(folder, POINTER)) as f:
            return json.load(f)
    except FileNotFoundError:
        return None
    except ValueError as exc:
        raise ValueError(f"{folder}/{POINTER} is not JSON ({exc}): remove {folder}") from exc


def generation_of(info: dict | None) -> str | None:
    """The generation an ``index.json`` names, if it is one of ours (never a path)."""
    name = (info or {}).get("generation")
    return name if isinstance(name, str) and GENERATION.match(name) else None


@contextlib.contextmanager
def _locked(folder: str):
    """One commit at a time in ``folder`` (between processes too, where fcntl exists)."""
    try:
        import fcntl
    except ImportError:  # not POSIX: commits are still atomic, their clean-ups may overlap
        yield
        return
    with open(os.path.join(folder, _LOCK), "a") as f:
        fcntl.flock(f, fcntl.LOCK_EX)
        try:
            yield
        finally:
            fcntl.flock(f, fcntl.LOCK_UN)


def commit(folder: str, generation: str, info: dict) -> None:
    """Make the complete folder ``folder/generation`` the current index, then remove the
    generations it replaces (their open readers keep their files) and, once, the files of
    the single-folder layout."""
    with _locked(folder):
        previous = read_pointer(folder)
        tmp = os.path.join(folder, f"{POINTER}.{generation}{_PARTIAL}")
        with open(tmp, "w") as f:
            json.dump({**info, "generation": generation}, f, indent=1, allow_nan=False)
        os.replace(tmp, os.path.join(folder, POINTER))
        now = time.time()
        for name in os.listdir(folder):
            path = os.path.join(folder, name)
            if GENERATION.match(name) and name != generation:
                shutil.rmtree(path, ignore_errors=True)
            elif _is_partial(name) and now - os.path.getmtime(path) > _STALE_PARTIAL_S:
                if os.path.isdir(path):
                    shutil.rmtree(path, ignore_errors=True)
                else:
                    with contextlib.suppress(FileNotFoundError):
                        os.remove(path)
        if previous is not None and generation_of(previous) is None:
            for name in LEGACY:
                with contextlib.suppress(FileNotFoundError):
                    os.remove(os.path.join(folder, name))


def _is_partial(name: str) -> bool:
    """A build's unfinished folder (``GEN.partial``) or pointer (``index.json.GEN.partial``)."""
    if not name.endswith(_PARTIAL):
        return False
    stem = name[: -len(_PARTIAL)].removeprefix(f"{POINTER}.")
    return bool(GENERATION.match(stem))


def partial_folder(folder: str, generation: str) -> str:
    return os.path.join(folder, generation + _PARTIAL)


def open_npy(path: str):
    """``(open file, memory map)`` of a 2-d ``.npy``: the map and the file both hold this
    file's data even after its name is removed or given to another file."""
    f = open(path, "rb")
    try:
        version = np.lib.format.read_magic(f)
        if version == (1, 0):
            shape, fortran, dtype = np.lib.format.read_array_header_1_0(f)
        else:
            shape, fortran, dtype = np.lib.format.read_array_header_2_0(f)
        if fortran or len(shape) != 2 or shape[0] == 0:
            raise ValueError(f"{path}: expected a non-empty 2-d C-order array, got {shape}")
        return f, np.memmap(f, dtype=dtype, mode="r", shape=shape, offset=f.tell())
    except BaseException:
        f.close()
        raise


def read_rows(fd: int, offset: int, rows: np.ndarray) -> None:
    """Fill ``rows`` from ``fd`` at ``offset`` (pread: no shared file position, so threads
    may read the same file at once)."""
    view = memoryview(rows).cast("B")
    done = 0
    while done < len(view):
        n = os.preadv(fd, [view[done:]], offset + done)
        if n <= 0:
            raise OSError(f"the search index ended early ({done} of {len(view)} bytes)")
        done += n
