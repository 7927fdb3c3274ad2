"""``clip-video-hierarchy DATASET --out DIR``: Video ReCap's clip, segment and video features
from an embedding dataset. Exit code 0, or 2 for a usage error or a dataset sampled too
sparsely for the windows."""

from __future__ import annotations

import argparse
import sys
from collections.abc import Sequence

from video2numpy.examples import with_examples

from .build import HierarchyOptions, build


def main(argv: Sequence[str] | None = None) -> int:
    parser = argparse.ArgumentParser(
        prog="clip-video-hierarchy",
        description="Clip-, segment- and video-level features for hierarchical video models"
        " (the Video ReCap layout).",
        **with_examples(
            "clip-video-hierarchy lectures --out lectures_hierarchy",
            "clip-video-hierarchy s3://bucket/ego4d --out ego4d_h --clip-seconds 4 --dtype float16",
        ),
    )
    parser.add_argument("dataset", help="a clip-video-encode output (folder or URL)")
    parser.add_argument("--out", required=True, help="output folder (or fsspec URL)")
    parser.add_argument("--clip-seconds", type=float, default=4.0, help="clip window (4)")
    parser.add_argument("--segment-seconds", type=float, default=180.0, help="segment (180)")
    parser.add_argument("--min-segment-features", type=int, default=45,
                        help="features per segment at least (45)")  # fmt: skip
    parser.add_argument("--dtype", choices=["float32", "float16"], default="float32")
    parser.add_argument("--quiet", action="store_true")
    args = parser.parse_args(argv)
    try:
        options = HierarchyOptions(args.clip_seconds, args.segment_seconds,
                                   args.min_segment_features, args.dtype)  # fmt: skip
        counts = build(args.dataset, args.out, options, False if args.quiet else None)
    except (ValueError, FileNotFoundError) as exc:
        print(f"clip-video-hierarchy: {exc}", file=sys.stderr)
        return 2
    print(f"clip-video-hierarchy: {counts['videos']} videos, {counts['clips']} clip features,"
          f" {counts['segments']} segments ({counts['filled_windows']} windows without a frame"
          f" took their nearest) -> {args.out}", file=sys.stderr)  # fmt: skip
    return 0


if __name__ == "__main__":
    sys.exit(main())
