"""Language-guided video summaries (CLIP-It's recipe) on an embedding dataset, and their
evaluation on TVSum and SumMe: ``clip-video-summarize`` and ``clip-video-summarize eval``.

Shots come from kernel temporal segmentation of the frame embeddings (:func:`kts`), frames
are scored by their similarity to the user's text (or a generic criterion), and shots are
chosen under a length budget by an exact knapsack (:func:`knapsack`).
"""

from .knapsack import greedy, knapsack
from .scores import query_scores, representativeness
from .shots import fixed_shots, kts
from .summary import SummaryOptions, VideoSummary, summarize_video
from .videos import summarize_dataset

__all__ = [
    "SummaryOptions",
    "VideoSummary",
    "fixed_shots",
    "greedy",
    "knapsack",
    "kts",
    "query_scores",
    "representativeness",
    "summarize_dataset",
    "summarize_video",
]
