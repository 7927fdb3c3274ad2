"""``video2numpy SRC --dest DIR``: sampled frames of many videos as ``.npy`` files.

For every input video it writes ``NAME.npy`` (n, H, W, 3 uint8) and then ``NAME.json``
(status, error, timestamps, source metadata). The ``.json`` is written last, so a rerun skips
the videos that already succeeded and redoes the rest. ``run.json``, written before any of
them, records the settings and input a rerun must match (see :mod:`video2numpy.outputs`).
Exit code 0 only if every video succeeded, 1 if any failed, 2 for a usage error or a
destination that holds another run.
"""

from __future__ import annotations

import argparse
import json
import os
import sys
import time
from collections import Counter
from collections.abc import Sequence

from .encodings import encoding_option
from .examples import with_examples
from .jsonsafe import dumps
from .npy import NpyWriter
from .options import add_frame_arguments, frame_options
from .outputs import RunMismatch, output_names, prepare_run, run_settings
from .reader import default_workers, stream_videos
from .status import SUCCESS


def add_table_arguments(parser: argparse.ArgumentParser) -> None:
    group = parser.add_argument_group("input table columns")
    group.add_argument("--location-col", default="location", help="column of video locations")
    group.add_argument("--id-col", default="id", help="column of ids, used in names if present")
    group.add_argument("--start-col", default="start", help="per-row window start, if present")
    group.add_argument("--end-col", default="end", help="per-row window end, if present")
    group.add_argument("--caption-col", default="caption", help="caption column, if present")
    group.add_argument(
        "--encoding",
        type=encoding_option,
        help="text encoding of the input table (default UTF-8; e.g. cp1252, latin-1)",
    )
    group.add_argument(
        "--save-columns", default="", help="comma-separated columns to copy into NAME.json"
    )


def load_rows(src: str, args: argparse.Namespace) -> list[dict]:
    """The input rows: ``location``, ``id``, the window of each video, and in ``meta`` the
    caption and the columns to copy into its record. Raises ValueError for a table that
    cannot be run: a missing column, or a start/end cell that is no time (named by row,
    column and value, by clip-video-encode's rule), before anything is written. The window
    cells stay as read (the input's digest is of the rows as read); each task reads them
    as seconds (:meth:`~video2numpy.video.Task.from_source`)."""
    from .table import check_seconds, is_table, read_table, require_columns  # pyarrow: main()

    if not is_table(src):
        return [{"location": src, "id": None, "start": None, "end": None, "meta": {}}]
    table = read_table(src, args.encoding)
    saved = [c.strip() for c in args.save_columns.split(",") if c.strip()]
    require_columns(table, {"--location-col": args.location_col}, src)
    for column in saved:
        require_columns(table, {"--save-columns": column}, src)
    check_seconds(table, {"start": args.start_col, "end": args.end_col})
    meta = {c: table.column(c).to_pylist() for c in saved}
    if args.caption_col in table.column_names:
        meta = {"caption": table.column(args.caption_col).to_pylist(), **meta}
    columns = {
        "location": args.location_col,
        "id": args.id_col,
        "start": args.start_col,
        "end": args.end_col,
    }
    data = {k: table.column(c).to_pylist() for k, c in columns.items() if c in table.column_names}
    rows = []
    for i in range(table.num_rows):
        row = {key: data[key][i] if key in data else None for key in columns}
        row["location"] = str(row["location"] or "").strip()
        row["id"] = str(row["id"]) if row["id"] not in (None, "") else None
        row["meta"] = {c: values[i] for c, values in meta.items()}
        rows.append(row)
    return rows


def table_columns(src: str, args: argparse.Namespace) -> dict:
    """The columns a table is read by: they decide the rows and what each record carries,
    so they are part of a run's settings (none for a single video)."""
    from .table import is_table

    if not is_table(src):
        return {}
    return {
        "location": args.location_col,
        "id": args.id_col,
        "start": args.start_col,
        "end": args.end_col,
        "caption": args.caption_col,
        "save": [c.strip() for c in args.save_columns.split(",") if c.strip()],
    }


def main(argv: Sequence[str] | None = None) -> int:
    # tqdm and pyarrow are imported where they are used, not at the top: each decode worker
    # (a spawned process) imports this module again as its parent's main module.
    from tqdm import tqdm

    parser = argparse.ArgumentParser(
        prog="video2numpy",
        description="Decode and sample videos into uint8 numpy arrays (NAME.npy + NAME.json).",
        **with_examples(
            "video2numpy videos.csv --dest frames --fps 1 --size 224",
            "video2numpy clip.mp4 --dest frames --num-frames 8",
            "video2numpy urls.txt --dest s3://bucket/frames --fps 2 --start 10 --end 20",
        ),
    )
    parser.add_argument("src", help="a video path or URL, a YouTube id, or a table of videos")
    parser.add_argument("--dest", required=True, help="output folder (local)")
    parser.add_argument(
        "--overwrite",
        action="store_true",
        help="remove the outputs of the run recorded in --dest (the names its run.json lists)"
        " and start again; without it a rerun resumes, and one with other settings or input"
        " is refused",
    )
    add_frame_arguments(parser)
    add_table_arguments(parser)
    args = parser.parse_args(argv)

    if "://" in args.dest and not args.dest.startswith("file://"):
        parser.error("--dest must be a local folder (clip-video-encode writes to fsspec URLs)")
    try:
        options = frame_options(args)
        rows = load_rows(args.src, args)
    except (ValueError, FileNotFoundError) as exc:
        parser.error(str(exc))
    dest = args.dest.removeprefix("file://")
    os.makedirs(dest, exist_ok=True)
    names = output_names(rows)
    try:
        settings = run_settings(args.src, rows, names, options, table_columns(args.src, args))
        prepare_run(dest, settings, args.overwrite)
    except (RunMismatch, OSError) as exc:
        print(f"video2numpy: {exc}", file=sys.stderr)
        return 2
    todo = [i for i in range(len(rows)) if args.overwrite or not _done(dest, names[i], rows[i])]
    skipped = len(rows) - len(todo)

    began = time.perf_counter()
    statuses: Counter[str] = Counter()
    frames_total = 0
    writers: dict[int, NpyWriter] = {}
    sources = [{k: rows[i][k] for k in ("location", "start", "end")} for i in todo]
    workers = default_workers() if args.workers is None else args.workers
    with tqdm(total=len(todo), unit="video", disable=None, desc="video2numpy") as bar:
        for chunk in stream_videos(sources, options, workers, args.timeout):
            row = todo[chunk.index]
            name = names[row]
            if len(chunk.frames):
                if row not in writers:
                    path = os.path.join(dest, name + ".npy")
                    writers[row] = NpyWriter(path, chunk.frames.shape[1:])
                writers[row].append(chunk.frames)
            if chunk.record is None:
                continue
            record = {"name": name, "id": rows[row]["id"], **rows[row]["meta"], **chunk.record}
            record["index"] = row
            writer = writers.pop(row, None)
            if record["status"] == SUCCESS and writer is not None:
                writer.close()
            else:
                if writer is not None:
                    writer.discard()
                _remove(os.path.join(dest, name + ".npy"))
            _write_json(os.path.join(dest, name + ".json"), record)
            statuses[record["status"]] += 1
            frames_total += record["n_frames"]
            bar.update(1)

    failed = sum(n for status, n in statuses.items() if status != SUCCESS)
    detail = ", ".join(f"{s}: {n}" for s, n in sorted(statuses.items()) if s != SUCCESS)
    print(
        f"video2numpy: {len(todo)} videos in {time.perf_counter() - began:.1f} s,"
        f" {statuses[SUCCESS]} succeeded, {failed} failed{f' ({detail})' if detail else ''},"
        f" {frames_total} frames"
        f"{f'; {skipped} already done' if skipped else ''} -> {dest}",
        file=sys.stderr,
    )
    return 1 if failed else 0


def _done(dest: str, name: str, row: dict) -> bool:
    """Whether ``name`` holds this row's successful output. The record must be of this very
    location: a file of the same name from elsewhere is never taken for it."""
    try:
        with open(os.path.join(dest, name + ".json"), encoding="utf-8") as f:
            record = json.load(f)
    except (OSError, ValueError):
        return False
    return (
        isinstance(record, dict)
        and record.get("status") == SUCCESS
        and record.get("location") == row["location"]
    )


def _write_json(path: str, record: dict) -> None:
    tmp = path + ".partial"
    with open(tmp, "w") as f:
        f.write(dumps(record, ensure_ascii=False))
    os.replace(tmp, path)


def _remove(path: str) -> None:
    try:
        os.remove(path)
    except FileNotFoundError:
        pass


if __name__ == "__main__":
    sys.exit(main())
