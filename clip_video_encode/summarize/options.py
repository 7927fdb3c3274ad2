"""The options and queries summaries and their evaluation share: the command-line options of
a summary, and the queries embedded in a dataset's own space."""

from __future__ import annotations

import argparse
from collections.abc import Sequence

import numpy as np

from .summary import SummaryOptions


def add_summary_options(parser: argparse.ArgumentParser) -> None:
    """The options shared by summaries and their evaluation."""
    parser.add_argument(
        "--query",
        action="append",
        default=[],
        metavar="TEXT",
        help="what the summary is about (repeatable; a path to an image file"
        " works too); none: the generic criterion",
    )
    parser.add_argument(
        "--combine",
        choices=["max", "mean"],
        default="max",
        help="several queries: a frame's best (max) or mean similarity",
    )
    parser.add_argument(
        "--contrast",
        metavar="TEXT",
        help="score each query as softmax against a generic prompt, as search"
        " does (e.g. 'a video frame')",
    )
    parser.add_argument(
        "--budget", type=float, default=0.15, help="summary length as a share of the video (0.15)"
    )
    parser.add_argument(
        "--shots", default="kts", help="kts (kernel temporal segmentation) or fixed:SECONDS (kts)"
    )
    parser.add_argument(
        "--select",
        choices=["knapsack", "top"],
        default="knapsack",
        help="knapsack: the exact best choice; top: greedy, best shots first",
    )
    parser.add_argument(
        "--max-shot-seconds", type=float, default=60.0, help="longest shot KTS makes (60)"
    )
    parser.add_argument("--pretrained", help="weights for the queries (default: run.json's)")
    parser.add_argument("--device", default="auto")


def summary_options(args: argparse.Namespace) -> SummaryOptions:
    return SummaryOptions(args.budget, args.shots, args.select, args.max_shot_seconds)


def embed_queries(
    dataset: str, args: argparse.Namespace, queries: Sequence[str] | None = None
) -> tuple[np.ndarray | None, np.ndarray | None]:
    """The queries' embeddings (None for none) and the contrast prompt's, in the dataset's
    own model's space (the text tower alone is loaded)."""
    from ..read import read_run
    from ..search.query import embed_query, query_encoder, query_weights

    queries = list(args.query if queries is None else queries)
    if not queries and not args.contrast:
        return None, None
    run = read_run(dataset)
    query_weights(run, args.pretrained)
    text = query_encoder(run, args.pretrained, args.device)
    embedded = [embed_query(run, args.pretrained, args.device, q, text)[0] for q in queries]
    contrast = text.encode_text([args.contrast])[0] if args.contrast else None
    return (np.stack(embedded) if embedded else None), contrast
