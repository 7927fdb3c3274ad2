"""``clip-video-mix INPUT ... --dest DIR``: one training set from many datasets, without
duplicates and without evaluation videos.

Exit code 0, 2 for a usage error or inputs that cannot be mixed (the message says why and
what to do), 3 when the destination refuses writes, 130 when interrupted. A rerun of the same
command resumes a mixed dataset: committed shards are kept.
"""

from __future__ import annotations

import argparse
import errno
import sys
from collections.abc import Sequence


def _by(text: str) -> tuple[str, ...]:
    parts = tuple(p.strip() for p in text.split(",") if p.strip())
    bad = [p for p in parts if p not in ("source", "content")]
    if bad or not parts:
        raise argparse.ArgumentTypeError(f"--by takes source, content or both ({text!r})")
    return parts


def _fraction(text: str) -> float:
    try:
        value = float(text)
    except ValueError:
        value = -1.0
    if not 0.0 < value < 1.0:
        raise argparse.ArgumentTypeError(f"{text!r}: a number between 0 and 1")
    return value


class _Bars:
    """``progress(stage, total)`` for the library: a tqdm bar per stage on a terminal."""

    def __init__(self, quiet: bool) -> None:
        self.quiet, self.bars = quiet, []

    def __call__(self, stage: str, total: int):
        from tqdm import tqdm

        bar = tqdm(total=total, desc=stage, unit="video", disable=True if self.quiet else None)
        self.bars.append(bar)
        return bar.update

    def close(self) -> None:
        for bar in self.bars:
            bar.close()


def parser() -> argparse.ArgumentParser:
    from video2numpy.examples import with_examples

    p = argparse.ArgumentParser(
        prog="clip-video-mix",
        description="Mix embedding datasets and input tables into one: rows whose video is in"
        " an evaluation set (--exclude) go, then rows that are the same source clip as a kept"
        " row of another input (same YouTube video, URL or file, overlapping windows), then"
        " with --by content rows whose pooled embedding is within eps of an evaluation video"
        " or of a kept row. Writes a resharded dataset, or with --table-only a clean input"
        " table; always mix_report.json and mix_pairs.parquet. See docs/mix.md.",
        **with_examples(
            "clip-video-mix k600_train.parquet vatex_train.parquet --exclude k400_val.parquet"
            " --table-only --dest clean",
            "clip-video-mix k600_ds vatex_ds --exclude k400_val_ds --by source,content --dry-run"
            " --dest mixed",
            "clip-video-mix s3://b/webvid s3://b/k700 --weights 0.5,all --dest s3://b/mixed",
        ),
    )
    p.add_argument("inputs", nargs="+", metavar="DATASET_OR_TABLE")
    p.add_argument("--dest", required=True, help="output folder or fsspec URL")
    p.add_argument(
        "--exclude",
        action="append",
        default=[],
        metavar="EVAL_DATASET_OR_TABLE",
        help="an evaluation set whose videos must not be in the mix (repeatable)",
    )
    p.add_argument(
        "--exclude-level",
        choices=["video", "window"],
        default="video",
        help="video (default): every row of a video an evaluation set uses goes;"
        " window: only rows whose window meets an evaluation window",
    )
    p.add_argument("--exclude-split", help="use only the evaluation sets' rows of this split")
    p.add_argument(
        "--weights",
        help="per input, in input order, comma separated: a rate in"
        " (0, 1] written with a decimal point (0.5, 1.0) or a cap on rows (5000);"
        " 'all' for every row",
    )
    p.add_argument(
        "--by",
        type=_by,
        default=("source",),
        help="source (default), content (datasets: pooled embeddings), or both",
    )
    p.add_argument(
        "--eps",
        type=_fraction,
        default=0.05,
        help="content: a near-duplicate has cosine >= 1 - eps (0.05)",
    )
    p.add_argument(
        "--clusters",
        type=int,
        help="content: k-means clusters (default: one per 5000 rows; 1 compares every pair)",
    )
    p.add_argument(
        "--keep",
        choices=["first", "longest", "largest"],
        default="first",
        help="which copy stays: the earlier input's (default), the longest window, the most pixels",
    )
    p.add_argument(
        "--iou",
        type=_fraction,
        help="same source clip only at this window IoU (default: any overlap)",
    )
    p.add_argument(
        "--table-only",
        action="store_true",
        help="write DEST/mix.parquet, the mixed input table, instead of a dataset",
    )
    p.add_argument(
        "--dry-run",
        action="store_true",
        help="report what would be removed (DEST/_dry_run/), write nothing else",
    )
    p.add_argument("--samples-per-shard", type=int, default=1000,
                   help="rows per output shard (1000)")  # fmt: skip
    p.add_argument("--seed", type=int, default=0, help="for --weights and k-means (0)")
    p.add_argument("--quiet", action="store_true", help="print only errors")
    return p


def main(argv: Sequence[str] | None = None) -> int:
    args = parser().parse_args(argv)
    from ..commit.writer import StorageRefused
    from ..destination.lease import DestinationBusy, LeaseLost
    from .inputs import InputError
    from .output import MixMismatch
    from .plan import MixOptions, Weight
    from .report import summary_lines
    from .run import MixJob, run_mix

    def say(text: str) -> None:
        if not args.quiet:
            print(f"clip-video-mix: {text}", file=sys.stderr)

    if args.table_only and args.dry_run:
        print("clip-video-mix: --dry-run writes nothing; drop --table-only", file=sys.stderr)
        return 2
    if args.clusters is not None and args.clusters < 1:
        print("clip-video-mix: --clusters must be at least 1", file=sys.stderr)
        return 2
    mode = "dry" if args.dry_run else "table" if args.table_only else "dataset"
    try:
        weights = tuple(Weight.parse(w) for w in args.weights.split(",")) if args.weights else ()
        options = MixOptions(
            args.by, args.eps, args.clusters, args.keep, args.iou, args.exclude_level,
            args.exclude_split, weights, args.seed,
        )  # fmt: skip
        job = MixJob(args.inputs, args.dest, args.exclude, options, mode, args.samples_per_shard)
        bars = _Bars(args.quiet)
        try:
            report = run_mix(job, progress=bars, log=say)
        finally:
            bars.close()
    except (InputError, MixMismatch, DestinationBusy, LeaseLost) as exc:
        print(f"clip-video-mix: {exc}", file=sys.stderr)
        return 2
    except FileNotFoundError as exc:
        print(f"clip-video-mix: {exc}", file=sys.stderr)
        return 2
    except (StorageRefused, OSError) as exc:
        if isinstance(exc, StorageRefused) or exc.errno in (
            errno.ENOSPC,
            errno.EDQUOT,
            errno.EROFS,
            errno.EACCES,
        ):
            print(f"clip-video-mix: the destination refused a write: {exc}", file=sys.stderr)
            return 3
        raise
    except KeyboardInterrupt:
        print("clip-video-mix: interrupted; rerun the same command to resume",
              file=sys.stderr)  # fmt: skip
        return 130
    if not args.quiet:
        for line in summary_lines(report):
            print(line)
    if mode == "dry":
        what = "report, pairs and histogram" if report.get("similarity") else "report and pairs"
        say(f"dry run: nothing mixed; {what} in {report['written_to']}")
    elif mode == "table":
        say(f"{report['total']['kept']} rows -> {report['table']}")
    else:
        w = report["writing"]
        say(
            f"{w['rows']} rows in {w['shards']} shards ({w['shards_written']} written now)"
            f" -> {args.dest}"
        )
    return 0


if __name__ == "__main__":
    sys.exit(main())
