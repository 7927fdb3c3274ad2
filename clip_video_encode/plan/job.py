"""A run's job: what the user asked for, and what the machine chooses where they did not."""

from __future__ import annotations

import dataclasses
import json
from dataclasses import dataclass, field

import fsspec

from video2numpy.video import FrameOptions

from ..models.encoder import PRECISIONS, EncoderOptions
from .shards import Columns


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
    except (FileNotFoundError, ValueError):  # none, or plan_run says why
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
