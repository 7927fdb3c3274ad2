"""One mix from start to end: open the inputs, plan, then write what the mode asks for.

Modes: ``dataset`` (the mixed dataset, resumable: :mod:`.output`), ``table`` (``--table-only``:
:mod:`.tableout`) and ``dry`` (``--dry-run``: the report, the pairs and the histogram in
``DEST/_dry_run/``; nothing else is written, the inputs never are).

Before anything is read in bulk the inputs are checked against each other: one input named
twice (or two names of one input: equal identities), an input that is also an evaluation set
(every row would go), a destination that is an input or inside one (inputs are read, never
changed) are refused with what to do.
"""

from __future__ import annotations

import io
import json
import os
from dataclasses import dataclass

import fsspec
import pyarrow.parquet as pq

from .inputs import Input, InputError, open_input
from .output import (
    PLAN_PATH,
    MixMismatch,
    check_binding,
    mix_settings,
    plan_digest,
    plan_rows,
    table_bytes,
    write_dataset,
)
from .plan import MixOptions, make_plan
from .report import _put, write_report

DRY_RUN = "_dry_run"
MODES = ("dataset", "table", "dry")


@dataclass
class MixJob:
    inputs: list[str]
    dest: str
    excludes: list[str]
    options: MixOptions
    mode: str = "dataset"
    samples_per_shard: int = 1000


def _where(name: str) -> str:
    """A comparable form of a location: the absolute path, or the URL."""
    name = name.rstrip("/") or name
    if "://" in name and not name.startswith("file://"):
        return name
    return os.path.realpath(name.removeprefix("file://"))


def check_names(job: MixJob) -> None:
    if not job.inputs:
        raise InputError("give at least one input (a dataset or a table)")
    if job.mode not in MODES:
        raise InputError(f"unknown mode {job.mode!r}")
    if job.samples_per_shard < 1:
        raise InputError("--samples-per-shard must be at least 1")
    weights = job.options.weights
    if weights and len(weights) != len(job.inputs):
        raise InputError(f"--weights has {len(weights)} values for {len(job.inputs)} inputs:"
                         " give one per input, in input order")  # fmt: skip
    dest = _where(job.dest)
    seen: dict[str, str] = {}
    for name in [*job.inputs, *job.excludes]:
        where = _where(name)
        if where in seen:
            raise InputError(f"{name} is given twice (also as {seen[where]}): name each input"
                             " once, and no input as an --exclude too")  # fmt: skip
        seen[where] = name
        if dest == where or dest.startswith(where.rstrip("/") + "/"):
            raise InputError(f"--dest {job.dest} is (inside) the input {name}: inputs are"
                             " read, never written; choose another --dest")  # fmt: skip


def check_identities(inputs: list[Input], excludes: list[Input]) -> None:
    """Two names for one dataset or table (equal content) are one input given twice."""
    seen: dict[str, Input] = {}
    for item in [*inputs, *excludes]:
        other = seen.get(item.identity)
        if other is not None:
            also = " as an --exclude" if item in excludes or other in excludes else ""
            raise InputError(
                f"{item.name} and {other.name} hold the same {item.kind}{also}: an input"
                " that is also an evaluation set would lose every row, and one given twice"
                " would duplicate every row. Name it once."
            )
        seen[item.identity] = item


def run_mix(job: MixJob, progress=None, log=print) -> dict:
    """Run ``job``; returns the report (``mode`` dataset: with the writing counts).
    ``progress(stage, total)``: returns a callable told of each unit done (optional);
    ``log(text)``: a line for the user."""
    check_names(job)
    log(f"reading {len(job.inputs)} input(s) and {len(job.excludes)} evaluation set(s)")
    inputs = [open_input(n) for n in job.inputs]
    excludes = [open_input(n) for n in job.excludes]
    check_identities(inputs, excludes)
    fs, dest = fsspec.core.url_to_fs(job.dest)
    dest = dest.rstrip("/") or dest
    if job.mode == "dry":
        folder = f"{dest}/{DRY_RUN}"
        fs.makedirs(folder, exist_ok=True)
        plan = make_plan(inputs, excludes, job.options, progress=progress)
        report = write_report(fs, folder, plan)
        report["written_to"] = fs.unstrip_protocol(folder) if "://" in job.dest else folder
        return report
    if job.mode == "table":
        return _table_only(job, fs, dest, inputs, excludes, progress)
    return _dataset(job, fs, dest, inputs, excludes, progress, log)


def _table_only(job, fs, dest, inputs, excludes, progress) -> dict:
    from .tableout import write_table

    if fs.exists(f"{dest}/run.json"):
        raise MixMismatch(f"{job.dest} holds a dataset (run.json): write --table-only into"
                          " another --dest")  # fmt: skip
    plan = make_plan(inputs, excludes, job.options, progress=progress)
    fs.makedirs(dest, exist_ok=True)
    path, _ = write_table(fs, dest, plan)
    report = write_report(fs, dest, plan)
    report["table"] = fs.unstrip_protocol(path) if "://" in job.dest else path
    return report


def _dataset(job, fs, dest, inputs, excludes, progress, log) -> dict:
    from ..destination.lease import Lease

    tables = [i.name for i in inputs if i.kind == "table"]
    if tables:
        raise InputError(f"{tables[0]} is a table: a mixed dataset is made of encoded"
                         " datasets. Use --table-only for a mixed input table, or encode the"
                         " table first (clip-video-encode)")  # fmt: skip
    settings = mix_settings(inputs, excludes, job.options.describe(), job.samples_per_shard)
    fs.makedirs(dest, exist_ok=True)
    with Lease(fs, dest) as lease:  # one run per destination, before anything there changes
        rows, settings, report = _plan_or_resume(job, fs, dest, inputs, excludes, settings,
                                                 progress, log)  # fmt: skip
        report["writing"] = write_dataset(fs, dest, settings, rows, inputs, lease.check,
                                          progress)  # fmt: skip
    return report


def _plan_or_resume(job, fs, dest, inputs, excludes, settings, progress, log):
    """The plan of the mix in ``dest``: the one written there when the destination holds this
    very mix (same inputs, identities and options), else a new one, written with its report
    and then ``run.json``. Returns ``(plan rows, run.json, report)``."""
    run_path = f"{dest}/run.json"
    plan_path = f"{dest}/{PLAN_PATH}"
    previous = None
    if fs.exists(run_path):
        with fs.open(run_path) as f:
            previous = json.load(f)
        if previous.get("tool") != "clip-video-mix":
            raise MixMismatch(f"{job.dest} holds a dataset that is no mix (run.json): choose"
                              " another --dest")  # fmt: skip
        check_binding(previous, settings, job.dest)
        try:
            data = fs.cat_file(plan_path)
        except FileNotFoundError:
            data = b""
        if plan_digest(data) == previous["mix"].get("plan_sha256"):
            rows = pq.read_table(io.BytesIO(data))
            log(f"resuming the mix in {job.dest}: its plan has {rows.num_rows} rows")
            try:
                with fs.open(f"{dest}/mix_report.json") as f:
                    report = json.load(f)
            except FileNotFoundError:
                report = {"notes": ["mix_report.json is gone from the destination"]}
            return rows, previous, report
    elif fs.exists(f"{dest}/mix.parquet"):
        raise MixMismatch(f"{job.dest} holds a --table-only mix: choose another --dest")
    plan = make_plan(inputs, excludes, job.options, progress=progress)
    rows = plan_rows(plan, job.samples_per_shard)
    data = table_bytes(rows)
    begun = previous.get("mix", {}).get("plan_sha256") if previous else None
    if begun is not None and begun != plan_digest(data):
        raise MixMismatch(
            f"{job.dest}: its plan ({PLAN_PATH}) is gone or damaged and the same inputs"
            " now give another plan; choose another --dest"
        )
    fs.makedirs(f"{dest}/_mix", exist_ok=True)
    _put(fs, plan_path, data)
    report = write_report(fs, dest, plan)
    settings["mix"]["plan_sha256"] = plan_digest(data)
    settings["mix"]["rows"] = rows.num_rows
    _put(fs, run_path, json.dumps(settings, indent=1, allow_nan=False).encode())
    return rows, settings, report
