"""``video-convert DATASET ANNOTATIONS... --out TABLE``: a dataset's official annotation files
to the input table of ``video2numpy`` and ``clip-video-encode``."""

from __future__ import annotations

import argparse
import json
import os
import sys
from collections.abc import Sequence

import pyarrow as pa

from . import ConvertError, convert, converters


def write_table(table: pa.Table, out: str) -> None:
    """parquet, jsonl, or csv/tsv (list columns such as ``captions`` written as JSON text)."""
    import fsspec

    name = out.lower()
    with fsspec.open(out, "wb", auto_mkdir=True) as f:
        if name.endswith(".parquet"):
            import pyarrow.parquet as pq

            pq.write_table(table, f)
        elif name.endswith((".jsonl", ".ndjson")):
            for row in table.to_pylist():
                f.write((json.dumps(row, ensure_ascii=False) + "\n").encode("utf-8"))
        elif name.endswith((".csv", ".tsv")):
            import pyarrow.csv as pc

            for i, column in enumerate(table.schema):
                if pa.types.is_list(column.type):
                    text = [
                        None if v is None else json.dumps(v, ensure_ascii=False)
                        for v in table.column(i).to_pylist()
                    ]
                    table = table.set_column(i, column.name, pa.array(text, pa.string()))
            delimiter = "\t" if name.endswith(".tsv") else ","
            pc.write_csv(table, f, pc.WriteOptions(delimiter=delimiter))
        else:
            raise ValueError(f"--out {out}: name a .parquet, .jsonl, .csv or .tsv file")


def main(argv: Sequence[str] | None = None) -> int:
    parser = argparse.ArgumentParser(
        prog="video-convert",
        description="Turn a public dataset's annotation files into the input table of"
        " video2numpy / clip-video-encode (columns id, location, caption, start, end, split).",
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
    parser.add_argument("--encoding", default="utf-8", help="text encoding of the files (utf-8)")
    parser.add_argument("--list", action="store_true", help="list the supported datasets")
    args = parser.parse_args(argv)
    if args.list:
        for name, converter in converters().items():
            print(f"{name:12s} {converter.title}\n{'':12s} files: {converter.files}")
        return 0
    if not args.dataset or not args.annotations or not args.out:
        parser.error("give DATASET, its ANNOTATIONS files and --out (or --list)")
    try:
        table, report = convert(
            args.dataset,
            args.annotations,
            split=args.split,
            video_root=args.video_root,
            encoding=args.encoding,
            drop_missing=args.drop_missing,
        )
        write_table(table, args.out)
    except (ConvertError, ValueError, FileNotFoundError, LookupError) as exc:
        print(f"video-convert: error: {exc}", file=sys.stderr)
        return 2
    for note in report.notes:
        print(f"video-convert: {note}", file=sys.stderr)
    splits = {}
    if "split" in table.column_names:
        for value in table.column("split").to_pylist():
            splits[value] = splits.get(value, 0) + 1
    by_split = ", ".join(f"{k}: {v}" for k, v in splits.items() if k is not None)
    print(
        f"video-convert: {table.num_rows} rows from {len(args.annotations)} file(s) ->"
        f" {os.path.abspath(args.out) if '://' not in args.out else args.out}"
        + (f" ({by_split})" if by_split else ""),
        file=sys.stderr,
    )
    return 0


if __name__ == "__main__":
    sys.exit(main())
