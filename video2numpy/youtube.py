"""YouTube ids and downloads through yt-dlp's Python API (never a shell string)."""

from __future__ import annotations

import os
import re
import shutil
from collections.abc import Callable
from urllib.parse import parse_qs, urlparse

from .status import FetchError

_ID = re.compile(r"^[A-Za-z0-9_-]{11}$")
_HOSTS = {
    "youtube.com",
    "www.youtube.com",
    "m.youtube.com",
    "music.youtube.com",
    "youtube-nocookie.com",
    "www.youtube-nocookie.com",
}
_PATH_PREFIXES = ("/embed/", "/v/", "/shorts/", "/live/", "/e/")


def parse_youtube_id(location: str) -> str | None:
    """The 11-character video id of a YouTube URL or bare id, else ``None``.

    Accepts watch URLs, youtu.be links, shorts/embed/live URLs, and bare ids (which may start
    with ``-`` or contain ``_``). A bare id is only an id when it is exactly 11 such characters.
    """
    location = location.strip()
    if _ID.match(location):
        return location
    if "://" not in location and location.split("/")[0].lower().split(":")[0] in _HOSTS | {
        "youtu.be"
    }:
        location = "https://" + location
    try:
        url = urlparse(location)
    except ValueError:
        return None
    if url.scheme not in ("http", "https"):
        return None
    host = (url.hostname or "").lower()
    candidate = None
    if host == "youtu.be":
        candidate = url.path.lstrip("/").split("/")[0]
    elif host in _HOSTS:
        if url.path == "/watch":
            candidate = (parse_qs(url.query).get("v") or [""])[0]
        else:
            for prefix in _PATH_PREFIXES:
                if url.path.startswith(prefix):
                    candidate = url.path[len(prefix) :].split("/")[0]
                    break
    return candidate if candidate and _ID.match(candidate) else None


def youtube_format(min_side: int) -> str:
    """A yt-dlp format selector for the smallest single file whose short side is >= min_side.

    Single-file (no merge, so no ffmpeg needed), H.264 first because every decoder has it, then
    any codec, then the largest available when nothing is big enough.
    """
    big = f"[height>={min_side}][width>={min_side}]"
    return f"wv*{big}[vcodec^=avc1]/wv*{big}[vcodec!=none]/bv*/b"


def ydl_options(
    workdir: str,
    min_side: int,
    socket_timeout: float,
    max_bytes: int,
    section: tuple[float, float] | None,
    progress: Callable[[int], None] | None = None,
) -> dict:
    """The yt-dlp options for one download; ``section`` fetches only that window;
    ``progress`` is told the bytes downloaded so far."""
    options = {
        "format": youtube_format(min_side),
        "outtmpl": {"default": os.path.join(workdir, "%(id)s.%(ext)s")},
        "quiet": True,
        "no_warnings": True,
        "noprogress": True,
        "noplaylist": True,
        "socket_timeout": socket_timeout,
        "retries": 2,
        "max_filesize": max_bytes,
        "cachedir": False,
    }
    if progress is not None:

        def hook(status: dict) -> None:
            if status.get("downloaded_bytes"):  # yt-dlp may not know the count yet
                progress(int(status["downloaded_bytes"]))

        options["progress_hooks"] = [hook]
    if section is not None:
        from yt_dlp.utils import download_range_func

        options["download_ranges"] = download_range_func(None, [section])
        options["force_keyframes_at_cuts"] = False
    return options


def download_youtube(
    video_id: str,
    workdir: str,
    min_side: int,
    socket_timeout: float,
    max_bytes: int,
    start: float | None,
    end: float | None,
    sections: bool,
    progress: Callable[[int], None] | None = None,
) -> tuple[str, float]:
    """Download a video; returns ``(path, time_offset)``.

    With a window, ``sections`` and an ffmpeg on PATH (yt-dlp cuts with it), only the window is
    fetched and ``time_offset`` is the window start, to be added to the file's timestamps.
    ffmpeg cuts a copied stream at keyframes, so a section's first frames may start a little
    before ``start``; sampling still applies the window in source time.
    """
    import yt_dlp

    section = None
    if sections and start is not None and end is not None and shutil.which("ffmpeg"):
        section = (float(start), float(end))
    options = ydl_options(workdir, min_side, socket_timeout, max_bytes, section, progress)
    url = f"https://www.youtube.com/watch?v={video_id}"
    try:
        with yt_dlp.YoutubeDL(options) as ydl:
            info = ydl.extract_info(url, download=True)
    except Exception as exc:  # yt-dlp raises DownloadError with the site's reason
        raise FetchError(f"yt-dlp could not download {video_id}: {exc}") from exc
    downloads = (info or {}).get("requested_downloads") or []
    path = downloads[0].get("filepath") if downloads else None
    if not path or not os.path.exists(path):
        raise FetchError(f"yt-dlp reported no file for {video_id} (too large, or no format)")
    return path, (section[0] if section else 0.0)
