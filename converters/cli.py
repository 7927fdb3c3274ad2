"""``video-convert DATASET ANNOTATIONS... --out TABLE``: a dataset's official annotation files
to the input table of ``video2numpy`` and ``clip-video-encode``."""

from __future__ import annotations

import argparse
import os
import sys
from collections.abc import Sequence

from video2numpy.encodings import encoding_option
from video2numpy.examples import with_examples

from . import ConvertError, Report, convert_rows, converters
from .output import write_rows


def main(argv: Sequence[str] | None = None) -> int:
    parser = argparse.ArgumentParser(
        prog="video-convert",
        description="Turn a public dataset's annotation files into the input table of"
        " video2numpy / clip-video-encode (columns id, location, caption, start, end, split).",
        **with_examples(
            "video-convert --list",
            "video-convert kinetics k400/val.csv --video-root k400/videos --out k400_val.parquet",
            "video-convert vatex vatex_training_v1.0.json --out vatex_train.parquet --strict",
        ),
    )
    parser.add_argument("dataset", nargs="?", help="dataset name (see --list)")
    parser.add_argument("annotations", nargs="*", help="the dataset's annotation files")
    parser.add_argument("--out", help="output table: .parquet (best), .jsonl, .csv or .tsv")
    parser.add_argument(
        "--split", help="keep this split; also the split of rows whose files do not name one"
    )
    parser.add_argument(
        "--video-root",
        help="folder of downloaded videos: rows point at DIR/**/<clip id>.mp4 (already cut"
        " to the clip) or DIR/**/<video id>.mp4 instead of their URL",
    )
    parser.add_argument(
        "--drop-missing",
        action="store_true",
        help="with --video-root, leave out rows whose video is not there (default: keep"
        " them with their URL)",
    )
    parser.add_argument(
        "--encoding",
        default="utf-8",
        type=encoding_option,
        help="text encoding of the files (utf-8; also utf-8-sig, utf-16, utf-16-le/-be, utf-32,"
        " latin-1, cp1252, ...)",
    )
    parser.add_argument(
        "--strict",
        action="store_true",
        help="stop at the first bad line (a window that ends before it starts, a time that is"
        " not a number, ...) with its file and line; by default such lines are left out and"
        " counted in a warning that names the first few",
    )
    parser.add_argument("--list", action="store_true", help="list the supported datasets")
    args = parser.parse_args(argv)
    if args.list:
        for name, converter in converters().items():
            print(f"{name:12s} {converter.title}\n{'':12s} files: {converter.files}")
        return 0
    if not args.dataset or not args.annotations or not args.out:
        parser.error("give DATASET, its ANNOTATIONS files and --out (or --list)")
    try:
        report = Report()
        rows = convert_rows(args.dataset, args.annotations, report, split=args.split,
                            video_root=args.video_root, encoding=args.encoding,
                            drop_missing=args.drop_missing, strict=args.strict)  # fmt: skip
        splits: dict = {}

        def counted(rows):
            for row in rows:
                splits[row.get("split")] = splits.get(row.get("split"), 0) + 1
                yield row

        written = write_rows(counted(rows), args.out, converters()[args.dataset].types)
    except (ConvertError, ValueError, OSError, LookupError) as exc:  # OSError: a folder, ...
        print(f"video-convert: error: {exc}", file=sys.stderr)
        return 2
    for note in report.notes:
        print(f"video-convert: {note}", file=sys.stderr)
    by_split = ", ".join(f"{k}: {v}" for k, v in splits.items() if k is not None)
    print(
        f"video-convert: {written} rows from {len(args.annotations)} file(s) ->"
        f" {os.path.abspath(args.out) if '://' not in args.out else args.out}"
        + (f" ({by_split})" if by_split else ""),
        file=sys.stderr,
    )
    return 0


if __name__ == "__main__":
    sys.exit(main())
