"""Search inside videos (``clip-video-search``): the index (:mod:`.index`, on disk one
generation at a time: :mod:`.store`), moments and their ranking (:mod:`.moments`), the ANN
index (:mod:`.ann`), the command line (:mod:`.cli`) and the HTML report (:mod:`.report`)."""

from .ann import ANN_FILE, build_ann, rank_moments_ann
from .index import (
    INDEX_DIR,
    SearchIndex,
    build_index,
    frame_scores,
    index_folder,
    iter_top_frames,
    read_run,
    search,
    write_index,
)
from .moments import Moment, MomentOptions, moments_of, rank_moments, smooth_curves

__all__ = [
    "ANN_FILE", "INDEX_DIR", "Moment", "MomentOptions", "SearchIndex", "build_ann",
    "build_index", "frame_scores", "index_folder", "iter_top_frames", "moments_of",
    "rank_moments", "rank_moments_ann", "read_run", "search", "smooth_curves", "write_index",
]  # fmt: skip
