"""The command-line options of sampling, frame size, decoding and fetching, and the
:class:`FrameOptions` they give: shared by ``video2numpy`` and ``clip-video-encode``, so that
one command line samples the same frames in both."""

from __future__ import annotations

import argparse
import math

from .decode import BACKENDS
from .fetch import FetchOptions
from .resize import MODES, Resize
from .sampling import Sampling
from .video import FrameOptions


def _seconds(value: str) -> float:
    """A run-wide --start/--end: a finite number (run.json records it; leave --end out for
    each video's end)."""
    number = float(value)
    if not math.isfinite(number):
        raise argparse.ArgumentTypeError(f"a finite number of seconds, got {value!r}")
    return number


def add_frame_arguments(parser: argparse.ArgumentParser) -> None:
    """Sampling, size and decoder options, shared with ``clip-video-encode``."""
    group = parser.add_argument_group("sampling (by presentation timestamp)")
    mode = group.add_mutually_exclusive_group()
    mode.add_argument("--fps", type=float, help="frames per second of video (true fps)")
    mode.add_argument("--every-nth", type=int, help="keep every N-th frame")
    mode.add_argument("--num-frames", type=int, help="N evenly spaced frames per video/window")
    group.add_argument("--max-frames", type=int, help="cap per video, thinned evenly")
    group.add_argument("--start", type=_seconds, help="window start in seconds, for every video")
    group.add_argument("--end", type=_seconds, help="window end in seconds, for every video")
    group = parser.add_argument_group("frames")
    group.add_argument("--size", type=int, default=224, help="output size in pixels (224)")
    group.add_argument(
        "--resize-mode",
        choices=MODES,
        default="crop",
        help="crop: short side to SIZE, centre crop (CLIP); pad: long side to SIZE, black"
        " padding; native: the video's own size",
    )
    group.add_argument("--backend", choices=BACKENDS, default="auto", help="decoder (auto)")
    group.add_argument("--threads", type=int, default=1, help="decoder threads per video (1)")
    group = parser.add_argument_group("fetching")
    group.add_argument("--workers", type=int, default=None, help="decode processes (one per core)")
    group.add_argument("--timeout", type=float, default=300, help="per-video stall limit, s (300)")
    group.add_argument("--connect-timeout", type=float, default=10.0, help="http connect, s (10)")
    group.add_argument("--read-timeout", type=float, default=30.0, help="http silence, s (30)")
    group.add_argument("--max-bytes", type=int, default=4 << 30, help="download size cap (4 GiB)")
    group.add_argument(
        "--no-youtube-sections",
        action="store_true",
        help="download whole YouTube videos even when a window is given",
    )


def frame_options(args: argparse.Namespace) -> FrameOptions:
    """Build :class:`FrameOptions` from parsed arguments (raises ValueError on bad values)."""
    sampling = Sampling(
        every_nth=args.every_nth,
        fps=args.fps,
        num_frames=args.num_frames,
        max_frames=args.max_frames,
        start=args.start,
        end=args.end,
    )
    fetch = FetchOptions(
        connect_timeout=args.connect_timeout,
        read_timeout=args.read_timeout,
        max_bytes=args.max_bytes,
        youtube_min_side=args.size,
        youtube_sections=not args.no_youtube_sections,
    )
    return FrameOptions(
        sampling=sampling,
        resize=Resize(args.size, args.resize_mode),
        backend=args.backend,
        threads=args.threads,
        fetch=fetch,
    )
