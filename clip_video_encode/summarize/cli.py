"""``clip-video-summarize DATASET [KEY_OR_ID ...]``: language-guided summaries of a dataset's
videos (shots, the shots chosen under a length budget, as JSON, mp4 and a page), and
``clip-video-summarize eval``: summaries scored against TVSum and SumMe annotations.

Exit code 0; 1 when an asked-for video is missing or failed, or a summary video could not be
cut; 2 for a usage error."""

from __future__ import annotations

import argparse
import json
import os
import sys
from collections.abc import Sequence

from video2numpy.examples import with_examples

from ..models.encoder import EncoderLoadError
from .options import add_summary_options, embed_queries, summary_options
from .summary import SummaryOptions


def main(argv: Sequence[str] | None = None) -> int:
    argv = list(sys.argv[1:] if argv is None else argv)
    if argv[:1] == ["eval"]:
        try:
            from .evaluate_cli import main as eval_main
        except ImportError as exc:
            print(
                f"clip-video-summarize eval: {exc}: pip install 'clip-video-datasets[summarize]'",
                file=sys.stderr,
            )
            return 2
        return eval_main(argv[1:])
    parser = argparse.ArgumentParser(
        prog="clip-video-summarize",
        description="Summaries of a clip-video-encode dataset's videos: shots, scored by their"
        " frames' similarity to the queries, chosen under a length budget. 'clip-video-summarize"
        " eval --help': evaluation on TVSum and SumMe.",
        **with_examples(
            'clip-video-summarize embeddings --query "a goal" --html summaries.html',
            "clip-video-summarize embeddings VIDEO_ID --budget 0.1 --video summaries/",
            "clip-video-summarize eval --tvsum-anno ydata-tvsum50-anno.tsv --baselines random",
        ),
    )
    parser.add_argument("dataset", help="a clip-video-encode output (folder or URL)")
    parser.add_argument(
        "videos", nargs="*", metavar="KEY_OR_ID", help="videos to summarise (default: all of them)"
    )
    add_summary_options(parser)
    parser.add_argument("--out", help="write the summaries' JSON here (default: stdout)")
    parser.add_argument(
        "--video",
        metavar="DIR",
        help="also cut each summary from its source video into DIR/KEY.mp4",
    )
    parser.add_argument(
        "--html", metavar="FILE", help="also write a page with each video's timeline and thumbnails"
    )
    parser.add_argument("--quiet", action="store_true")
    args = parser.parse_args(argv)
    prog = "clip-video-summarize"
    try:
        options = summary_options(args)
        if args.contrast and not args.query:
            raise ValueError("--contrast needs a --query")
        queries, contrast = embed_queries(args.dataset, args)
    except (EncoderLoadError, FileNotFoundError, ValueError) as exc:
        print(f"{prog}: {exc}", file=sys.stderr)
        return 2
    return _summarize(args, options, queries, contrast)


def _summarize(args, options: SummaryOptions, queries, contrast) -> int:
    from tqdm import tqdm

    from .videos import iter_videos, summarize_record

    prog, problems, summaries, found = "clip-video-summarize", [], [], set()
    wanted = args.videos or None
    if args.video:
        os.makedirs(args.video, exist_ok=True)
    bar = tqdm(unit="video", desc="summarize", disable=True if args.quiet else None)
    for embeddings, meta in iter_videos(args.dataset, wanted, include_failed=True):
        found |= {meta.get("key"), str(meta.get("id"))}
        if embeddings is None:
            problems.append(
                f"{meta.get('key')}: the dataset has no frames for it"
                f" ({meta.get('status')}: {meta.get('error_message')})"
            )
            continue
        summary = summarize_record(embeddings, meta, options, queries, args.combine, contrast)
        if summary.shots and not summary.selected_ranges:
            shortest = min(s.end_s - s.start_s for s in summary.shots)
            print(
                f"clip-video-summarize: {meta['key']}: no shot fits the budget (the shortest"
                f" is {shortest:.1f} s, the budget {summary.capacity / summary.fps:.1f} s):"
                " lower --max-shot-seconds, or use --shots fixed:SECONDS",
                file=sys.stderr,
            )
        if args.video and summary.selected_ranges:
            target = os.path.join(args.video, f"{meta['key']}.mp4")
            try:
                from .cut import write_summary_video

                cut = write_summary_video(meta["location"], summary.selected_ranges, target)
                summary.info["summary_video"] = {"path": target, **cut}
            except Exception as exc:  # an unreachable or unreadable source: said, run goes on
                problems.append(f"{meta['key']}: could not cut {meta.get('location')}: {exc}")
        summaries.append(summary)
        bar.update()
    bar.close()
    problems += [
        f"{w}: no such key or id in {args.dataset}" for w in wanted or [] if w not in found
    ]
    document = {
        "dataset": args.dataset,
        "queries": args.query,
        "combine": args.combine,
        "contrast": args.contrast,
        "options": vars(options),
        "videos": [s.as_dict() for s in summaries],
    }
    text = json.dumps(document)
    if args.out:
        with open(args.out, "w", encoding="utf-8") as f:
            f.write(text)
    else:
        print(text)
    if args.html:
        from .page import write_page

        title = "Summaries: " + (" / ".join(args.query) if args.query else "generic criterion")
        write_page(args.html, summaries, title)
    for problem in problems:
        print(f"{prog}: {problem}", file=sys.stderr)
    if not args.quiet:
        print(
            f"{prog}: {len(summaries)} videos summarised{' -> ' + args.out if args.out else ''}",
            file=sys.stderr,
        )
    return 1 if problems else 0


if __name__ == "__main__":
    sys.exit(main())
