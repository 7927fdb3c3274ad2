"""A run's plan: ``run.json`` written for a new destination, or checked against the one there
for a rerun (the settings that change what is written must match), and the shards left to do.

Executors (local, Ray) share the plan, so they write the same shards for the same input.
"""

from __future__ import annotations

import dataclasses
import json
from dataclasses import dataclass

import pyarrow as pa

from video2numpy.versions import package_versions
from video2numpy.video import FrameOptions

from ..destination.folder import committed_shards, names_in, stats_path
from ..destination.owned import check_free, inside, remove_shard
from .batching import GROUP_VIDEOS
from .job import EncodeJob
from .retry import Redo, plan_retries
from .shards import Shard, key_digits
from .source import Input, read_input

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


@dataclass
class Plan:
    """What a run will do, decided before any video is decoded: plain data, which the
    executors (local, Ray, a Ray pipeline in its own process) and the commit path share."""

    settings: dict  # run.json's
    frames: FrameOptions  # at the model's input size unless the user set one
    shards: list[Shard]  # every shard of the input
    todo: list[Shard]  # those left to do: uncommitted, or with rows to do again
    retries: dict[str, Redo]  # committed shards with rows to do again (--retry-failed)
    captions: bool  # samples carry KEY.txt
    committed: list[dict]  # the committed shards' stats, as the plan found them
    splits: dict[str, list[str]] | None  # each shard's splits, when the input has them
    schema: pa.Schema | None  # the input table's (None for tars: their fields show on reading)

    def videos(self) -> int | None:
        """Videos the run will do, when known up front (not for tar input, whose size shows
        on reading)."""
        if all(s.size is not None for s in self.todo):
            return sum(len(self.retries[s.name].positions) if s.name in self.retries else s.size
                       for s in self.todo)  # fmt: skip
        return None


def plan_run(job: EncodeJob, encoder: dict, fs, dest: str, read: Input | None = None) -> Plan:
    """Plan the shards, write or check ``run.json``, and list the shards left to do (each
    starting clean: what a failed commit left under its names is removed).
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
        "versions": run_versions(),
    }
    run_path = f"{dest}/run.json"
    split_column = not tar_input and columns.split in table.column_names
    listing = names_in(fs, dest)
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
    committed_names = {s["shard"] for s in committed}
    retries = plan_retries(fs, dest, committed, job.retry_statuses) if job.retry_statuses else {}
    todo = [s for s in shards if s.name not in committed_names or s.name in retries]
    present = names_in(fs, dest)
    for shard in todo:  # what a failed commit of this plan may have left under its names
        if shard.name not in retries:
            remove_shard(fs, dest, shard.name, job.output_format, present)
    return Plan(
        settings=settings,
        frames=frames,
        shards=shards,
        todo=todo,
        retries=retries,
        captions=captions,
        committed=committed,
        splits={s.name: s.splits() for s in shards} if split_column else None,
        schema=None if tar_input else table.schema,
    )


def _input_changed(previous: dict, settings: dict) -> str | None:
    """How the input table differs from the one the destination was started from."""
    if previous.get("rows") != settings["rows"]:
        return f"{previous.get('rows')} rows there, {settings['rows']} now"
    old = previous.get("input_sha256")
    if old is not None and old != settings["input_sha256"]:
        return "same number of rows, different content"
    return None


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
    text = json.dumps(value, indent=1, allow_nan=False)  # first: a value json refuses (NaN)
    with fs.open(inside(dest, f"{dest}/{name}", fs), "w") as f:  # leaves no file cut short
        f.write(text)


def _write_splits(fs, dest: str, shards: list[Shard], suffix: str) -> None:
    """``splits.csv`` (header ``tar_file,split``), the LAION video-clip layout. A shard whose
    rows have several splits lists them joined by ``|``."""
    lines = ["tar_file,split"]
    for shard in shards:
        splits = shard.splits()
        lines.append(f"{shard.name}{suffix},{splits[0] if len(splits) == 1 else '|'.join(splits)}")
    with fs.open(inside(dest, f"{dest}/splits.csv", fs), "w") as f:
        f.write("\n".join(lines) + "\n")


def _jsonable(value):
    return json.loads(json.dumps(value, default=str))


def run_versions() -> dict:
    return package_versions(
        "clip-video-datasets", "open_clip_torch", "torch", "av", "decord", "numpy"
    )
