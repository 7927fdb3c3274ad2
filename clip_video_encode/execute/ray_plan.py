"""What a Ray run starts: its options, the cluster's decoders and encoders split into lanes
(one per ``--pipelines``), and the check that the encoders it started agree."""

from __future__ import annotations

from dataclasses import dataclass

from ..models.weights import EncoderLoadError


@dataclass(frozen=True)
class RayOptions:
    address: str | None = None  # None: RAY_ADDRESS, else a Ray instance started here
    decoders: int | None = None  # None: the cluster's CPUs left after the encoders
    encoders: int | None = None  # None: one per GPU, or one where there is no GPU
    encoder_cpus: float = 1.0  # CPUs an encoder actor reserves where there is no GPU
    encoder_gpus: float | None = None  # GPUs per encoder (None: 1 if the cluster has GPUs)
    encoder_threads: int | None = None  # torch threads of a CPU encoder (None: its node's cores)
    max_attempts: int = 3  # decodes of one video whose actor died, before it is failed
    pipelines: int | None = None  # lanes of decoders+encoders, each writing its own shards
    group_videos: int | None = None  # videos per decode call (None: about a batch of frames)
    local_cpus: int | None = None  # CPUs of a Ray instance started here (None: all)


MAX_GROUP = 64  # videos per decode call at most: a lost decoder costs this many again
# A decode call's length, about: longer groups leave decoders idle at the end of the input
# while others finish theirs, and hold their frames back from the encoders.
GROUP_SECONDS = 2.0
HEARTBEAT_SECONDS = 10.0  # a decoder downloading a video says so this often, at most


@dataclass(frozen=True)
class Pools:
    """The actors one lane starts and drives."""

    decoders: int
    encoders: int
    encoder_gpus: float  # per encoder
    encoder_cpus: float  # per encoder


def plan_pools(options: RayOptions, resources: dict, driver_cpus: int) -> list[Pools]:
    """The cluster's decoders and encoders, split into lanes (one per ``--pipelines``).

    Pool sizes follow the resources present now; on an autoscaling cluster, name them
    (--decoders, --encoders, --encoder-gpus) and the autoscaler adds the nodes. A lane is one
    process on the driver's machine that schedules its videos and writes its shards: one per
    encoder at most (a lane without an encoder has nothing to do), and by default one per
    encoder while the driver's machine has two cores for each (measured: a lane keeps up
    with about one GPU's 10-frame clips, ``bench/driver_ceiling.py``); no GPU, one lane."""
    gpus = int(resources.get("GPU", 0))
    cpus = int(resources.get("CPU", 1))
    gpu_each = options.encoder_gpus if options.encoder_gpus is not None else min(gpus, 1)
    n_encoders = options.encoders or (int(gpus // gpu_each) if gpu_each else 1)
    encoder_cpus = 0 if gpu_each else options.encoder_cpus
    # Leave the encoders their CPUs: decoders asking for every CPU would starve them.
    n_decoders = options.decoders or max(1, int(cpus - n_encoders * encoder_cpus))
    lanes = options.pipelines or (min(n_encoders, driver_cpus // 2) if gpu_each else 1)
    lanes = max(1, min(lanes, n_encoders, n_decoders))
    return [
        Pools(_share(n_decoders, lanes, i), _share(n_encoders, lanes, i), gpu_each, encoder_cpus)
        for i in range(lanes)
    ]


def _share(total: int, parts: int, i: int) -> int:
    return total // parts + (i < total % parts)


def same_encoders(started: list[tuple[dict, int]]) -> tuple[dict, int]:
    """The encoders' common description and batch size. Encoders on other nodes that loaded
    other weights (another file at the same path) would mix two models in one dataset, and
    another batch size (a CPU node beside GPU ones) would batch frames otherwise: both stop
    the run before anything is written."""
    description, batch_size = started[0]
    for other, size in started[1:]:
        if other.get("weights_sha256") != description.get("weights_sha256"):
            raise EncoderLoadError(
                "the encoder actors loaded different weights (sha256"
                f" {description.get('weights_sha256')} and {other.get('weights_sha256')}):"
                " give every node the same checkpoint file"
            )
        if size != batch_size or other.get("precision") != description.get("precision"):
            raise EncoderLoadError(
                f"the encoder actors chose different batch sizes or precisions ({batch_size}"
                f" {description.get('precision')} and {size} {other.get('precision')}: nodes"
                " of other kinds): give --batch-size and --precision"
            )
    return description, batch_size
