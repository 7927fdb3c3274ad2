"""Search inside videos (``clip-video-search``): the index and its ranking (:mod:`.index`),
the command line (:mod:`.cli`) and the HTML report (:mod:`.report`)."""

from .index import (
    ANN_FILE,
    INDEX_DIR,
    Moment,
    MomentOptions,
    SearchIndex,
    build_ann,
    build_index,
    frame_scores,
    index_folder,
    iter_top_frames,
    moments_of,
    rank_moments,
    rank_moments_ann,
    read_run,
    search,
    write_index,
)

__all__ = [
    "ANN_FILE", "INDEX_DIR", "Moment", "MomentOptions", "SearchIndex", "build_ann",
    "build_index", "frame_scores", "index_folder", "iter_top_frames", "moments_of",
    "rank_moments", "rank_moments_ann", "read_run", "search", "write_index",
]  # fmt: skip
