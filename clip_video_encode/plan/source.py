"""The input of a run, read and split into shards before anything is loaded or created: a
table that cannot be used fails here, in a second, with nothing written."""

from __future__ import annotations

from dataclasses import dataclass

import fsspec
import pyarrow as pa

from video2numpy.table import is_table, read_table

from ..destination.owned import refuse_inputs_in_the_way, run_names
from .job import EncodeJob
from .shards import Shard, input_digest, plan_shards
from .tars import expand_tars, is_tar_input, shard_names


def load_input(src: str, encoding: str | None = None) -> pa.Table:
    """A table of videos, or a one-row table for a single video path or URL."""
    if is_table(src):
        return read_table(src, encoding)
    return pa.table({"location": [src]})


@dataclass
class Input:
    """The input read and planned, before anything is loaded or created: a table that cannot
    be used fails here, in a second, with nothing written."""

    table: pa.Table
    shards: list[Shard]
    digest: str | None  # content hash of a table's rows (None for tar input)
    tar_input: bool


def read_input(job: EncodeJob) -> Input:
    """Read, check and plan the job's input. Raises ValueError or FileNotFoundError with one
    line that says what is wrong."""
    columns = job.columns
    if columns.caption is None and job.caption_similarity:
        raise ValueError("--caption-similarity needs a caption column")
    if is_tar_input(job.src):
        urls = expand_tars(job.src)
        names = [name for name, _ in shard_names(urls)]  # safe and unique (tars.py)
        shards = [Shard(i, names[i], tar=u) for i, u in enumerate(urls)]
        names = run_names([s.name for s in shards], job.output_format)
        refuse_inputs_in_the_way(job.dest, names, urls, "the input tar")
        fs, _ = fsspec.core.url_to_fs(urls[0])
        remote = "://" in urls[0] and not urls[0].startswith("file://")
        missing = [u for u in (urls[:1] if remote else urls) if not fs.exists(u)]
        if missing:
            raise FileNotFoundError(
                f"{job.src}: no such tar {missing[0]}"
                f"{f' (and {len(missing) - 1} more)' if len(missing) > 1 else ''}"
            )
        return Input(pa.table({"location": urls}), shards, None, True)
    table = load_input(job.src, job.encoding)
    if table.num_rows == 0:
        raise ValueError(f"{job.src} has no rows: nothing to encode")
    shards = plan_shards(table, columns, job.samples_per_shard)
    names = run_names([s.name for s in shards], job.output_format)
    refuse_inputs_in_the_way(job.dest, names, [job.src], "the input table")
    refuse_inputs_in_the_way(job.dest, names, _near(table.column(columns.location), job.dest),
                             "the video")  # fmt: skip
    return Input(table, shards, input_digest(shards), False)


def _near(locations: pa.ChunkedArray, dest: str) -> list[str]:
    """The locations that may lie inside ``dest``: those that name its folder (as given or
    its real path), or every relative one when this process works inside it. A filter on
    text, so a table of millions of rows costs a scan, not a path resolution per row."""
    import os

    import pyarrow.compute as pc

    if "://" in dest and not dest.startswith("file://"):
        leaves = [dest.rstrip("/").rsplit("/", 1)[-1]]
    else:
        path = dest.removeprefix("file://")
        leaves = [os.path.basename(os.path.abspath(path)), os.path.basename(os.path.realpath(path))]
        cwd = os.path.realpath(os.getcwd())
        if os.path.commonpath([cwd, os.path.realpath(path)]) == os.path.realpath(path):
            leaves.append("")  # every location may be relative to a folder inside dest
    text = pc.cast(locations, pa.string())
    hits = None
    for leaf in set(leaves):
        hit = pc.match_substring(text, leaf) if leaf else pc.is_valid(text)
        hits = hit if hits is None else pc.or_(hits, hit)
    return [v for v in pc.filter(text, hits).to_pylist() if v]
