"""Getting a video onto local disk: local paths, fsspec URLs, http(s), YouTube.

Remote videos are copied to a per-worker scratch folder and removed after decoding; decoders
then seek in a local file, which is far faster than seeking over the network.
"""

from __future__ import annotations

import contextlib
import os
import threading
import time
from collections.abc import Callable, Generator, Iterator
from dataclasses import dataclass
from urllib.parse import urlparse

from .status import FetchError
from .youtube import download_youtube, parse_youtube_id

_COPY_CHUNK = 1 << 20


@dataclass(frozen=True)
class FetchOptions:
    """Limits for getting one video. Every remote fetch is bounded in time and size."""

    connect_timeout: float = 10.0
    read_timeout: float = 30.0  # longest silence from a server
    max_seconds: float = 600.0  # whole download, so a trickling server cannot stall a worker
    max_bytes: int = 4 << 30
    youtube_min_side: int = 224
    youtube_sections: bool = True


@dataclass(frozen=True)
class Fetched:
    path: str
    time_offset: float = 0.0  # source time of the file's zero (YouTube section downloads)


def location_kind(location: str) -> str:
    """``local``, ``youtube``, ``http`` or ``fsspec``.

    A string that exists on disk is a path, even if it looks like a YouTube id.
    """
    if os.path.exists(location):
        return "local"
    if parse_youtube_id(location):
        return "youtube"
    scheme = urlparse(location).scheme.lower()
    if scheme in ("http", "https"):
        return "http"
    if scheme == "file" or len(scheme) <= 1:  # no scheme, or a Windows drive letter
        return "local"
    return "fsspec"


@contextlib.contextmanager
def fetch(
    location: str,
    workdir: str,
    options: FetchOptions = FetchOptions(),
    start: float | None = None,
    end: float | None = None,
    progress: Callable[[int], None] | None = None,
) -> Iterator[Fetched]:
    """Yield a local copy of ``location``; copies made here are deleted afterwards.
    ``progress``, if given, is told the bytes downloaded so far as they arrive."""
    kind = location_kind(location)
    if kind == "local":
        path = location[len("file://") :] if location.startswith("file://") else location
        if not os.path.exists(path):
            raise FetchError(f"no such file: {path}")
        if os.path.isdir(path):
            raise FetchError(f"is a folder, not a video file: {path}")
        yield Fetched(path)
        return

    os.makedirs(workdir, exist_ok=True)
    made: list[str] = []
    try:
        if kind == "youtube":
            video_id = parse_youtube_id(location)
            path, offset = download_youtube(
                video_id,
                workdir,
                options.youtube_min_side,
                options.read_timeout,
                options.max_bytes,
                start,
                end,
                options.youtube_sections,
                progress,
            )
            made.append(path)
            yield Fetched(path, offset)
            return
        path = os.path.join(workdir, "download" + _suffix(location))
        made.append(path)
        if kind == "http":
            _download_http(location, path, options, progress)
        else:
            _copy_fsspec(location, path, options, progress)
        yield Fetched(path)
    finally:
        for path in made:
            with contextlib.suppress(OSError):
                os.remove(path)


def fetch_beating(
    stack: contextlib.ExitStack,
    location: str,
    workdir: str,
    options: FetchOptions = FetchOptions(),
    start: float | None = None,
    end: float | None = None,
    every: float = 1.0,
) -> Generator[None, None, Fetched]:
    """:func:`fetch` entered on ``stack``, with a heartbeat: the download runs in a thread,
    and this yields ``None`` after each ``every`` seconds in which bytes arrived; it returns
    the :class:`Fetched`. A stall watchdog that counts silence (``--timeout``) then sees a
    long download of an hour-long video as the progress it is, and a server that sends
    nothing as the stall it is."""
    if location_kind(location) == "local":
        return stack.enter_context(fetch(location, workdir, options, start, end))
    arrived = [0]  # bytes so far, written by the download thread
    entered: dict = {}

    def progress(n: int) -> None:
        arrived[0] = n

    download = fetch(location, workdir, options, start, end, progress)

    def run() -> None:
        try:
            entered["fetched"] = download.__enter__()
        except BaseException as exc:  # noqa: B036 (raised in the caller's thread below)
            entered["error"] = exc

    thread = threading.Thread(target=run, name="download", daemon=True)
    thread.start()
    # If the consumer stops here, the thread's download ends on its own, and ``fetch``'s copy
    # is removed then, when nothing refers to it any more (tested).
    seen = 0
    while True:
        thread.join(every)
        if not thread.is_alive():
            break
        if arrived[0] != seen:
            seen = arrived[0]
            yield None
    if "error" in entered:
        raise entered["error"]
    stack.push(download.__exit__)
    return entered["fetched"]


def _suffix(location: str) -> str:
    ext = os.path.splitext(urlparse(location).path)[1]
    return ext if ext.isascii() and 1 < len(ext) <= 6 and ext[1:].isalnum() else ""


def _download_http(url: str, path: str, options: FetchOptions, progress=None) -> None:
    import requests
    import urllib3

    deadline = time.monotonic() + options.max_seconds
    try:
        with requests.get(
            url,
            stream=True,
            timeout=(options.connect_timeout, options.read_timeout),
            headers={"User-Agent": "clip-video-datasets/0.1"},
        ) as response:
            if response.status_code >= 400:
                raise FetchError(f"HTTP {response.status_code} {response.reason} for {url}")
            length = response.headers.get("Content-Length")
            if length and length.isdigit() and int(length) > options.max_bytes:
                raise FetchError(
                    f"{url} is {int(length)} bytes, over the {options.max_bytes}-byte cap"
                    " (raise --max-bytes to allow it)"
                )
            # read1 returns what has arrived, so the deadline is checked however slow the
            # server; each read still waits at most read_timeout.
            raw = response.raw
            chunks = iter(lambda: raw.read1(_COPY_CHUNK, decode_content=True), b"")
            with open(path, "wb") as out:
                _copy(chunks, out, url, options, deadline, progress)
    except (requests.exceptions.Timeout, urllib3.exceptions.TimeoutError) as exc:
        raise FetchError(f"timed out fetching {url}: {exc}") from exc
    except (requests.exceptions.RequestException, urllib3.exceptions.HTTPError) as exc:
        raise FetchError(f"cannot fetch {url}: {exc}") from exc


def _copy_fsspec(url: str, path: str, options: FetchOptions, progress=None) -> None:
    import fsspec

    deadline = time.monotonic() + options.max_seconds
    try:
        with fsspec.open(url, "rb") as src, open(path, "wb") as out:
            chunks = iter(lambda: src.read(_COPY_CHUNK), b"")
            _copy(chunks, out, url, options, deadline, progress)
    except FetchError:
        raise
    except FileNotFoundError as exc:
        raise FetchError(f"no such file: {url}") from exc
    except Exception as exc:  # each fsspec backend raises its own errors
        raise FetchError(f"cannot fetch {url}: {type(exc).__name__}: {exc}") from exc


def _copy(chunks, out, url: str, options: FetchOptions, deadline: float, progress=None) -> None:
    size = 0
    for chunk in chunks:
        size += len(chunk)
        if progress is not None:
            progress(size)
        if size > options.max_bytes:
            raise FetchError(
                f"{url} is over the {options.max_bytes}-byte cap (raise --max-bytes to allow it)"
            )
        if time.monotonic() > deadline:
            raise FetchError(f"fetching {url} took over {options.max_seconds:g} s")
        out.write(chunk)
