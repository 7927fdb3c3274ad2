"""``clip-video-search DATASET QUERY``: the moments of a dataset's videos that match a text or
an image."""

from __future__ import annotations

import argparse
import json
import sys
from collections.abc import Sequence

from video2numpy.examples import with_examples

from ..models.encoder import EncoderLoadError
from .ann import build_ann, rank_moments_ann
from .index import SearchIndex, build_index, frame_scores, read_run
from .moments import MomentOptions, rank_moments
from .query import embed_query, query_encoder, query_weights


def serve_main(argv: Sequence[str]) -> int:
    """``clip-video-search serve DATASET [DATASET ...]``: the search page and its API."""
    from .images import MAX_PIXELS
    from .server import CONCURRENCY, MAX_UPLOAD

    parser = argparse.ArgumentParser(
        prog="clip-video-search serve",
        description="Serve a search page and a JSON API over one or more datasets; the index"
        " and the text tower are loaded once.",
        **with_examples(
            "clip-video-search serve embeddings",
            "clip-video-search serve k400 msrvtt --host 0.0.0.0 --port 8080",
        ),
    )
    parser.add_argument("datasets", nargs="+", help="clip-video-encode outputs")
    parser.add_argument("--host", default="127.0.0.1", help="interface (127.0.0.1: this machine)")
    parser.add_argument("--port", type=int, default=8000)
    parser.add_argument("--pretrained", help="weights (default: those run.json names)")
    parser.add_argument("--device", default="auto")
    parser.add_argument("--max-upload", type=int, default=MAX_UPLOAD,
                        help="largest image query, in bytes (8 MiB)")  # fmt: skip
    parser.add_argument("--max-megapixels", type=float, default=MAX_PIXELS / 1e6,
                        help="largest image query, in pixels, refused from its header before"
                        f" it is decoded ({MAX_PIXELS / 1e6:g})")  # fmt: skip
    parser.add_argument("--concurrency", type=int, default=CONCURRENCY,
                        help="searches run at once, in threads beside the page's event loop"
                        f" ({CONCURRENCY})")  # fmt: skip
    parser.add_argument("--memory-gb", type=float, default=4.0,
                        help="frames held in memory as float32 up to this size per dataset"
                        " (a larger index is read from disk per query) (4)")  # fmt: skip
    args = parser.parse_args(argv)
    if args.concurrency < 1 or args.max_megapixels <= 0:
        parser.error("--concurrency must be >= 1 and --max-megapixels > 0")
    try:
        from .server import serve
    except ImportError as exc:
        print(f"clip-video-search serve: {exc}: pip install 'clip-video-datasets[serve]'",
              file=sys.stderr)  # fmt: skip
        return 2
    try:
        print(f"clip-video-search: serving {', '.join(args.datasets)} on"
              f" http://{args.host}:{args.port}/", file=sys.stderr)  # fmt: skip
        serve(args.datasets, args.host, args.port, args.pretrained, args.device,
              args.max_upload, int(args.memory_gb * (1 << 30)),
              int(args.max_megapixels * 1e6), args.concurrency)  # fmt: skip
    except (EncoderLoadError, FileNotFoundError, ValueError) as exc:
        print(f"clip-video-search serve: {exc}", file=sys.stderr)
        return 2
    return 0


def main(argv: Sequence[str] | None = None) -> int:
    argv = list(sys.argv[1:] if argv is None else argv)
    if argv[:1] == ["serve"]:
        return serve_main(argv[1:])
    parser = argparse.ArgumentParser(
        prog="clip-video-search",
        description="Find the moments of a clip-video-encode dataset's videos that match a"
        " text or an image (QUERY naming an image file).",
        **with_examples(
            'clip-video-search embeddings "a dog catching a frisbee" --top 5',
            "clip-video-search embeddings query.jpg --html report.html",
            "clip-video-search serve embeddings",
        ),
    )
    parser.add_argument(
        "dataset", help="a clip-video-encode output folder or fsspec URL (s3://bucket/ds)"
    )
    parser.add_argument("query", help="text, or the path of an image file")
    parser.add_argument("--top", type=int, default=10, help="moments to show (10)")
    parser.add_argument(
        "--threshold",
        type=float,
        default=0.5,
        help="moment threshold between a video's median (0) and best (1) score",
    )
    parser.add_argument(
        "--min-gap",
        type=float,
        default=2.0,
        help="kept frames closer than this many seconds join one moment (2)",
    )
    parser.add_argument("--smooth", type=int, default=1, help="moving average, in frames (1)")
    parser.add_argument("--per-video", type=int, default=1, help="moments per video (1)")
    parser.add_argument(
        "--contrast",
        metavar="TEXT",
        help="score as softmax against a generic prompt, e.g. 'a video frame'",
    )
    parser.add_argument(
        "--ann",
        action="store_true",
        help="approximate search (faiss IVF index, built once into DATASET/_search)",
    )
    parser.add_argument("--nprobe", type=int, default=16, help="IVF lists searched (16)")
    parser.add_argument(
        "--level",
        choices=["frame", "clip", "segment"],
        default="frame",
        help="frame: moments from each video's curve; clip: the best --clip-seconds windows;"
        " segment: the best --segment-seconds segments, then the best moment in each (long"
        " videos)",
    )
    parser.add_argument("--clip-seconds", type=float, default=4.0)
    parser.add_argument("--segment-seconds", type=float, default=180.0)
    parser.add_argument("--pretrained", help="weights (default: those run.json names)")
    parser.add_argument("--device", default="auto")
    parser.add_argument("--json", action="store_true", help="print the moments as JSON lines")
    parser.add_argument(
        "--html",
        metavar="FILE",
        help="also write a page with thumbnails and similarity plots (opens without a server)",
    )
    args = parser.parse_args(argv)
    try:
        run = read_run(args.dataset)  # first: a folder that is not a dataset fails at once
        query_weights(run, args.pretrained)
        index = SearchIndex(build_index(args.dataset))
        text = query_encoder(run, args.pretrained, args.device) if args.contrast else None
        query, kind = embed_query(run, args.pretrained, args.device, args.query, text)
        contrast = text.encode_text([args.contrast])[0] if text is not None else None
    except (EncoderLoadError, FileNotFoundError, ValueError) as exc:
        print(f"clip-video-search: {exc}", file=sys.stderr)
        return 2
    options = MomentOptions(args.threshold, args.min_gap, args.smooth, args.per_video)
    if args.ann and contrast is not None:
        print("clip-video-search: --contrast needs the exact search", file=sys.stderr)
        return 2
    segments: dict[int, tuple[float, float]] = {}
    if args.level != "frame":
        if args.ann:
            print("clip-video-search: --level needs the exact search", file=sys.stderr)
            return 2
        from .levels import rank_clips, rank_segments

        scores = frame_scores(index, query, contrast)
        if args.level == "clip":
            moments = rank_clips(index, scores, args.top, args.clip_seconds, args.per_video)
        else:
            found = rank_segments(index, scores, args.top, options, args.segment_seconds,
                                  args.clip_seconds)  # fmt: skip
            moments = [m for m, _, _ in found]
            segments = {id(m): (lo, hi) for m, lo, hi in found}
    elif args.ann:
        try:
            ann = build_ann(index, args.nprobe)
        except ImportError as exc:
            print(f"clip-video-search: {exc}", file=sys.stderr)
            return 2
        moments = rank_moments_ann(index, ann, query, args.top, options)
        scores = frame_scores(index, query) if args.html else None  # the plots need every frame
    else:
        scores = frame_scores(index, query, contrast)
        moments = rank_moments(index, scores, args.top, options)
    if args.html:
        from .report import write_report

        write_report(args.html, index, moments, scores, args.query)
        print(f"clip-video-search: {len(moments)} moments -> {args.html}", file=sys.stderr)
    if args.json:
        for m in moments:
            print(
                json.dumps(
                    {
                        **m.as_dict(),
                        "caption": index.videos[m.video]["caption"],
                        "location": index.videos[m.video]["location"],
                        **({"segment": list(segments[id(m)])} if id(m) in segments else {}),
                    }
                )
            )
        return 0
    print(f"{kind} query, {len(index)} frames of {len(index.videos)} videos")
    print(f"{'score':>7}  {'start':>8}  {'end':>8}  {'key':<12} id / caption")
    for m in moments:
        caption = index.videos[m.video]["caption"] or ""
        print(
            f"{m.score:7.4f}  {m.start_s:8.2f}  {m.end_s:8.2f}  {m.key:<12} {m.id or ''}"
            f"{'  ' + caption[:60] if caption else ''}"
        )
    return 0


if __name__ == "__main__":
    sys.exit(main())
