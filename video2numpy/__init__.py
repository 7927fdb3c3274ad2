"""Fetch, decode and sample videos into uint8 numpy frames, exactly and in bounded memory.

from video2numpy import FrameOptions, Sampling, read_videos
for frames, record in read_videos(["a.mp4", "https://..."], FrameOptions(Sampling(fps=1))):
    ...  # frames: (n, 224, 224, 3) uint8; record["timestamps"]: seconds of each frame
"""

from .decode import open_video
from .fetch import FetchOptions
from .reader import read_videos, stream_videos
from .resize import Resize
from .sampling import Sampling, select_frames
from .status import FAILED_TO_DECODE, FAILED_TO_FETCH, NO_FRAMES, SUCCESS, TIMEOUT
from .video import Chunk, FrameOptions, Task, sample_video
from .youtube import parse_youtube_id

__all__ = [
    "FAILED_TO_DECODE",
    "FAILED_TO_FETCH",
    "NO_FRAMES",
    "SUCCESS",
    "TIMEOUT",
    "Chunk",
    "FetchOptions",
    "FrameOptions",
    "Resize",
    "Sampling",
    "Task",
    "open_video",
    "parse_youtube_id",
    "read_videos",
    "sample_video",
    "select_frames",
    "stream_videos",
]
