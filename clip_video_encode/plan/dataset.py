"""What an embedding-dataset run is: its settings, its ``run.json``, its samples and summary.

Executors (local, Ray) share all of this, so they write the same shards for the same input.
"""

from __future__ import annotations

import dataclasses
import json
import math
import time
from collections import Counter
from dataclasses import dataclass, field

import fsspec
import pyarrow as pa

from video2numpy.jsonsafe import plain
from video2numpy.status import SUCCESS
from video2numpy.table import is_table, read_table
from video2numpy.versions import package_versions
from video2numpy.video import FrameOptions

from ..commit.card import Card, arrow_feature, merge_features
from ..commit.writer import Sample, committed_shards, stats_path
from ..destination.owned import (
    check_free,
    inside,
    refuse_inputs_in_the_way,
    remove_shard,
    run_names,
)
from ..execute.batching import GROUP_VIDEOS
from ..models.encoder import PRECISIONS, EncoderOptions
from .retry import plan_retries
from .shards import Columns, Shard, input_digest, key_digits, plan_shards
from .tars import expand_tars, is_tar_input, shard_names

# Settings that change what is written: a rerun into the same destination must match them.
# weights_sha256: the weights themselves (a path or tag may name other weights another day).
_BINDING = ("input", "model", "pretrained", "weights_sha256", "embed_dim", "sampling", "resize",
            "samples_per_shard", "columns", "caption_similarity", "output_format", "engine",
            "precision", "batch_size", "batch_group")  # fmt: skip
# Settings a run.json written before they were recorded did not bind (batches then followed
# the decoders' timing): such a destination resumes with today's.
_UNRECORDED_FREE = ("batch_size", "batch_group")
# What a run.json written before a setting existed meant by it. Its weights are unknown: such
# a run is not resumed blindly; the message shows the digest to add if they are these weights.
_BINDING_DEFAULTS = {
    "engine": "torch",
    "weights_sha256": "not recorded (run.json predates weight digests: if its shards were"
    " encoded with these weights, add the digest shown as now to it as weights_sha256)",
}


class RunMismatch(Exception):
    """The destination holds a run with other settings."""


@dataclass(frozen=True)
class EncodeJob:
    src: str
    dest: str
    frames: FrameOptions = field(default_factory=FrameOptions)
    encoder: EncoderOptions = field(default_factory=EncoderOptions)
    columns: Columns = field(default_factory=Columns)
    samples_per_shard: int = 1000
    workers: int | None = None
    timeout: float = 300.0
    caption_similarity: bool = False
    output_format: str = "webdataset"  # or "files": a folder of files per shard
    replan: bool = False  # the input changed: keep unchanged committed shards, redo the rest
    io_retries: int = 5  # retries of a commit step the destination refuses for a while
    encoding: str | None = None  # text encoding of the input table (None: UTF-8)
    size_from_model: bool = True  # frames at the model's own input size unless set
    # --retry-failed: statuses whose rows of committed shards are done again (empty: none)
    retry_statuses: frozenset[str] = frozenset()
    lease_seconds: float = 120.0  # a destination's lease goes stale this long after its run


def open_destination(dest: str):
    fs, path = fsspec.core.url_to_fs(dest)
    fs.invalidate_cache(path)  # what a cached listing says may be gone, or new, by now
    fs.makedirs(path, exist_ok=True)
    return fs, path.rstrip("/")


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


def with_choices_of_dest(job: EncodeJob) -> EncodeJob:
    """What the machine chooses when it is not given: ``--precision auto`` (bf16 only on CPUs
    with AMX, fp16 on GPUs; the rule itself has changed once) and the batch size (by device,
    precision and cores). A destination begun elsewhere or earlier keeps what it was begun
    with, so that rerunning the same command resumes it, with the same batches, instead of
    being refused. A new destination is left to the machine."""
    fs, path = fsspec.core.url_to_fs(job.dest)
    try:
        with fs.open(f"{path.rstrip('/')}/run.json") as f:
            begun = json.load(f)
    except (FileNotFoundError, ValueError):  # none, or prepare_run says why
        return job
    if not isinstance(begun, dict):
        return job
    encoder = job.encoder
    precision = begun.get("precision")
    if encoder.precision == "auto" and precision in PRECISIONS and precision != "auto":
        encoder = dataclasses.replace(encoder, precision=precision)
    size = begun.get("batch_size")
    if encoder.batch_size is None and isinstance(size, int) and size >= 1:
        encoder = dataclasses.replace(encoder, batch_size=size)
    return dataclasses.replace(job, encoder=encoder)


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


def prepare_run(job: EncodeJob, encoder: dict, fs, dest: str, read: Input | None = None) -> dict:
    """Plan the shards, write or check ``run.json``, and list the shards left to do.
    ``encoder`` is the encoder's ``describe()`` (the executor may hold the model elsewhere);
    ``read``: the input, when the executor has read it already (see :func:`read_input`)."""
    frames = job.frames
    if job.size_from_model and frames.resize.mode != "native":
        frames = dataclasses.replace(
            frames, resize=dataclasses.replace(frames.resize, size=encoder["image_size"])
        )
    columns = job.columns
    read = read or read_input(job)
    table, shards, digest, tar_input = read.table, read.shards, read.digest, read.tar_input
    settings = {
        "input": job.src,
        **encoder,
        # Which frames share a batch (see batching.py) moves embeddings by an ulp: part of
        # what the bytes depend on, as the batch size is.
        "batch_group": GROUP_VIDEOS,
        "sampling": dataclasses.asdict(frames.sampling),
        "resize": dataclasses.asdict(frames.resize),
        "backend": frames.backend,
        "samples_per_shard": job.samples_per_shard,
        "columns": dataclasses.asdict(columns),
        "caption_similarity": job.caption_similarity,
        "output_format": job.output_format,
        "rows": None if tar_input else table.num_rows,
        "input_sha256": digest,
        "shards": len(shards),
        "embedding_dtype": "float16",
        "versions": _versions(),
    }
    run_path = f"{dest}/run.json"
    split_column = not tar_input and columns.split in table.column_names
    listing = _names(fs, dest)
    if "run.json" in listing:
        previous = {**_BINDING_DEFAULTS, **_read_run(fs, run_path)}
        diff = [k for k in _BINDING if _jsonable(previous.get(k)) != _jsonable(settings.get(k))
                and not (k in _UNRECORDED_FREE and k not in previous)]  # fmt: skip
        if diff:
            lines = "; ".join(
                f"{k}: {previous.get(k)!r} there, {settings.get(k)!r} now" for k in diff
            )
            raise RunMismatch(
                f"{dest} holds a run with other settings ({lines}). Use another --dest, or"
                " rerun with the same settings to resume."
            )
        changed = _input_changed(previous, settings)
        if changed and not job.replan:
            raise RunMismatch(
                f"{dest} was started from another version of {job.src} ({changed}):"
                " resuming would skip or mix rows. Use another --dest, or rerun with --replan"
                " to keep the committed shards whose rows are unchanged and redo the others."
            )
        if changed:  # the shards the plan adds: their names must be free (see owned.py)
            planned = _planned_names(previous.get("shards", 0), job)
            new = [s.name for s in shards if s.name not in planned]
            check_free(fs, dest, new, job.output_format, listing)
            _retire_changed_shards(fs, dest, shards, previous.get("shards", 0), job)
            _write_json(fs, dest, "run.json", settings)
    else:  # a new run: every name it will write must be free, before it writes any
        run_files = (("README.md",) if job.output_format == "webdataset" else ()) + (
            ("splits.csv",) if split_column else ())  # fmt: skip
        check_free(fs, dest, [s.name for s in shards], job.output_format, listing, run_files)
        _write_json(fs, dest, "run.json", settings)
    committed = committed_shards(fs, dest)[0]
    _refuse_stray_shards(dest, committed, shards)
    if split_column:
        suffix = ".tar" if job.output_format == "webdataset" else ""
        _write_splits(fs, dest, shards, suffix)
    captions = tar_input or columns.caption in table.column_names
    if tar_input:  # an input tar's json fields: as the committed shards found them
        fields: dict = {}
        for stats in committed:
            for name, feature in stats.get("json_fields", {}).items():
                fields[name] = merge_features(fields.get(name), feature)
    else:
        fields = {c: arrow_feature(table.schema.field(c).type) for c in columns.save}
    card = Card(
        fs,
        dest,
        settings,
        captions,
        job.caption_similarity,
        {s.name: s.splits() for s in shards} if split_column else None,
        fields,
        committed,
    )
    if job.output_format == "webdataset":  # Hugging Face reads tars, not folders of files
        card.write()
    else:
        card = None
    done = {s["shard"] for s in committed}
    retries = plan_retries(fs, dest, committed, job.retry_statuses) if job.retry_statuses else {}
    todo = [s for s in shards if s.name not in done or s.name in retries]
    present = _names(fs, dest)
    for shard in todo:  # what a failed commit of this plan may have left under its names
        if shard.name not in retries:
            remove_shard(fs, dest, shard.name, job.output_format, present)
    return {
        "frames": frames,
        "todo": todo,
        "retries": retries,  # committed shards with rows to do again (--retry-failed)
        "captions": captions,
        "card": card,  # the dataset card (webdataset output), told of new json fields
        "summary": Summary(len(shards), len(todo), dest, len(retries)),
    }


def finish_sample(
    row: dict, index: int, record: dict, embeddings, similarity, job: EncodeJob
) -> Sample:
    """The ``KEY.json`` metadata and ``Sample`` of one row, from its decode record.
    ``similarity(embeddings, text)``: per-frame cosine to the caption (the encoder's)."""
    caption = caption_text(row.get("caption"))
    meta = {
        "key": row["key"],
        "id": plain(row.get("id")),
        "location": row["location"],
        "caption": caption,
        "status": record["status"],
        "error_message": record.get("error_message"),
        "n_frames": int(len(embeddings)) if embeddings is not None else 0,
        "timestamps": record.get("timestamps", []) if embeddings is not None else [],
        "duration": record.get("duration"),
        "source_fps": record.get("source_fps"),
        "width": record.get("width"),
        "height": record.get("height"),
        "rotation": record.get("rotation"),  # the display matrix, applied: width, height as shown
        "mirrored": record.get("mirrored"),
        "start": plain(row.get("start")),  # a NaN bound (a missing number) is no bound
        "end": plain(row.get("end")),
        "split": plain(row.get("split")),
    }
    if record.get("warning"):
        meta["warning"] = record["warning"]
    extra = {k: plain(v) for k, v in row.get("extra", {}).items()}
    meta.update({k: v for k, v in extra.items() if k not in meta})
    if job.caption_similarity and embeddings is not None and caption:
        meta["caption_similarity"] = [round(float(s), 5) for s in similarity(
            embeddings, caption)]  # fmt: skip
    # A damaged input tar: the row it cut into says so, and the shard's stats too.
    return Sample(index, row["key"], meta, embeddings, caption, extra,
                  shard_error=row.get("tar_error"))  # fmt: skip


class Summary:
    """Counts for the summary line and the exit code."""

    def __init__(self, shards: int, todo: int, dest: str, retried: int = 0) -> None:
        self.shards, self.todo, self.dest, self.retried = shards, todo, dest, retried
        self.began = time.perf_counter()
        self.statuses: Counter[str] = Counter()
        self.frames = 0
        self.done_shards = 0
        self.shard_errors: list[str] = []  # damaged input tars, as their shards' stats say

    def count(self, meta: dict) -> None:
        self.statuses[meta["status"]] += 1
        self.frames += meta["n_frames"]

    def shard_done(self, stats: dict) -> None:
        self.done_shards += 1
        if stats.get("error"):
            self.shard_errors.append(f"{stats['shard']}: {stats['error']}")

    def finish(self) -> dict:
        seconds = time.perf_counter() - self.began
        videos = sum(self.statuses.values())
        return {
            "dest": self.dest,
            "shards": self.shards,
            "shards_written": self.done_shards,
            "shards_skipped": self.shards - self.todo,
            "shards_retried": self.retried,  # committed shards rewritten (--retry-failed)
            "videos": videos,
            "successes": self.statuses.get(SUCCESS, 0),
            "failed": videos - self.statuses.get(SUCCESS, 0),
            "status_dict": dict(self.statuses),
            "frames": self.frames,
            "shard_errors": self.shard_errors,  # their rows are counted in failed too
            "seconds": round(seconds, 3),
        }


def _input_changed(previous: dict, settings: dict) -> str | None:
    """How the input table differs from the one the destination was started from."""
    if previous.get("rows") != settings["rows"]:
        return f"{previous.get('rows')} rows there, {settings['rows']} now"
    old = previous.get("input_sha256")
    if old is not None and old != settings["input_sha256"]:
        return "same number of rows, different content"
    return None


def _names(fs, dest: str) -> set[str]:
    """The names in ``dest``, listed afresh."""
    fs.invalidate_cache(dest)
    return {p.rstrip("/").rsplit("/", 1)[-1] for p in fs.ls(dest, detail=False)}


def _read_run(fs, path: str) -> dict:
    """The ``run.json`` in a destination; RunMismatch when it is not one of this tool's."""
    try:
        with fs.open(path) as f:
            run = json.load(f)
    except (ValueError, UnicodeDecodeError) as exc:
        run = exc
    if not isinstance(run, dict):
        raise RunMismatch(
            f"{path} is not the run.json of a clip-video-encode run ({run}): the destination"
            " holds something else. Use another --dest."
        )
    return run


def _planned_names(count: int, job: EncodeJob) -> set[str]:
    """The shard names of a table's plan of ``count`` shards (``run.json``'s)."""
    digits = key_digits(job.samples_per_shard, count)[0]
    return {f"{i:0{digits}d}" for i in range(count)}


def _refuse_stray_shards(dest: str, committed: list[dict], shards: list[Shard]) -> None:
    """Committed shards the plan does not name would be read beside this run's, their rows
    twice: shards an earlier version named otherwise (input tars' names are made safe now,
    so ``p.1.tar`` became shard ``p_1``), or a table that lost shards without --replan."""
    planned = {s.name for s in shards}
    stray = sorted(c["shard"] for c in committed if c.get("shard") not in planned)
    if stray:
        more = f" and {len(stray) - 3} more" if len(stray) > 3 else ""
        raise RunMismatch(
            f"{dest} holds committed shards this input does not plan ({', '.join(stray[:3])}"
            f"{more}): readers would read their rows beside this run's. They may have been"
            " written by an earlier version under other names. Remove each one's files"
            " (NAME.tar or NAME/, NAME.parquet, NAME_stats.json), or use another --dest."
        )


def _retire_changed_shards(fs, dest: str, shards: list[Shard], previous_count: int, job) -> None:
    """For --replan: un-commit every shard whose rows changed (its marker first, so a crash
    midway leaves it uncommitted), and remove shards past the new end of the table. Only
    shards with a commit marker are touched: their files are this tool's (owned.py)."""
    names = {s.name: s for s in shards}
    old_names = _planned_names(previous_count, job)
    for name in sorted(set(names) | old_names):
        marker = stats_path(dest, name)
        if not fs.exists(marker):
            continue
        shard = names.get(name)
        if shard is not None:
            with fs.open(marker) as f:
                if json.load(f).get("rows_sha256") == shard.digest():
                    continue  # the same rows: the committed shard stands
        remove_shard(fs, dest, name, job.output_format)


def record_in_run(fs, dest: str, values: dict) -> None:
    """Add what is learnt while a run goes (the engine's fidelity check) to ``run.json``."""
    with fs.open(f"{dest}/run.json") as f:
        run = json.load(f)
    _write_json(fs, dest, "run.json", {**run, **values})


def _write_json(fs, dest: str, name: str, value: dict) -> None:
    with fs.open(inside(dest, f"{dest}/{name}", fs), "w") as f:
        json.dump(value, f, indent=1, allow_nan=False)


def _write_splits(fs, dest: str, shards: list[Shard], suffix: str) -> None:
    """``splits.csv`` (header ``tar_file,split``), the LAION video-clip layout. A shard whose
    rows have several splits lists them joined by ``|``."""
    lines = ["tar_file,split"]
    for shard in shards:
        splits = shard.splits()
        lines.append(f"{shard.name}{suffix},{splits[0] if len(splits) == 1 else '|'.join(splits)}")
    with fs.open(inside(dest, f"{dest}/splits.csv", fs), "w") as f:
        f.write("\n".join(lines) + "\n")


def caption_text(value) -> str | None:
    if value is None:
        return None
    if isinstance(value, bytes):
        return value.decode("utf-8", errors="replace")
    if isinstance(value, list):  # several captions: the first is KEY.txt
        return caption_text(value[0]) if value else None
    if isinstance(value, float) and math.isnan(value):
        return None
    return str(value)


def _jsonable(value):
    return json.loads(json.dumps(value, default=str))


def _versions() -> dict:
    return package_versions(
        "clip-video-datasets", "open_clip_torch", "torch", "av", "decord", "numpy"
    )
