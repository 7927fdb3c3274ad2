"""The Ray executor: decode actors on CPUs, encoder actors on GPUs (or CPUs), and the driver
assembling and committing shards, exactly as the local executor does. A :class:`Lane`
(``ray_lane.py``) is that driver's loop over its decoders and encoders (``ray_actors.py``);
with ``--pipelines`` several lanes run in actors of their own (``ray_pipelines.py``), for
clusters whose encoders outrun one process. ``ray_plan.py`` sizes the pools.

Why Ray core actors rather than Ray Data: a shard must hold each of its input rows exactly
once, in input order, and be committed only when complete, so that shards are the same as the
local executor's and a rerun resumes at the first uncommitted shard. Here the driver owns that
bookkeeping (the same :class:`Assembly` the local executor uses): it hands videos to decode
actors in shard order, sends their frames to encoder actors in the batches the local executor
forms too (:mod:`..plan.batching`), and writes each finished video. Ray Data's ``map_batches``
would re-block and reorder rows and retry failed tasks on its own terms, leaving exactly-once
per shard to be rebuilt on top of it.

Frames stay in the object store. A decode actor's ``decode`` takes a group of videos (about
one encoder batch of frames: one 10-frame clip per call would cost the driver more than the
clip's encoding) and is a streaming generator that yields a small header and then the frames
gathered across videos; the driver reads headers only and passes the frame refs (with the ranges of
each batch) to an encoder actor, which reads them without a copy. Backpressure: the
driver stops pulling from decoders while the frames it holds for encoding reach a limit, and a
decoder's generator pauses after two items nobody pulled, so a slow encoder never lets decoders
fill memory.

Faults: a decoder or encoder that dies (its process killed, its node lost) costs re-doing the
videos it held: they are decoded again from scratch by a fresh actor, and late results of the
old attempt are ignored. A video that takes down its decoder ``max_attempts`` times is recorded
as failed. A driver that dies leaves uncommitted shards, which a rerun redoes.
"""

from __future__ import annotations

import os

from ..commit.ledger import Ledger
from ..plan.job import EncodeJob, with_choices_of_dest
from ..plan.run_file import Plan
from ..plan.source import read_input
from .ray_actors import Actors
from .ray_lane import Lane
from .ray_plan import Pools, RayOptions, plan_pools
from .ray_progress import Progress
from .run import run_job

__all__ = ["RayOptions", "encode_dataset_ray", "plan_pools"]


def encode_dataset_ray(
    job: EncodeJob,
    options: RayOptions | None = None,
    progress: bool | None = None,
    actors: Actors | None = None,
) -> dict:
    """Run ``job`` on a Ray cluster; returns the run's summary, as the local executor does."""
    import ray

    options = options or RayOptions()
    actors = actors or Actors()
    read = read_input(job)  # before any actor: unusable input fails at once, nothing created
    job = with_choices_of_dest(job)
    started_here = not ray.is_initialized()
    if started_here:
        address = options.address or os.environ.get("RAY_ADDRESS")
        init = {"address": address} if address else {"num_cpus": options.local_cpus}
        ray.init(**init, log_to_driver=False, configure_logging=False)
    try:
        pools = plan_pools(options, ray.cluster_resources(), os.cpu_count() or 1)
        if len(pools) > 1:
            from .ray_pipelines import PipelinesExecutor

            return run_job(job, read, PipelinesExecutor(job, options, actors, pools, progress))
        return run_job(job, read, LaneExecutor(job, options, actors, pools[0], progress))
    finally:
        if started_here:
            ray.shutdown()


class LaneExecutor:
    """One lane, run by the driver itself."""

    def __init__(self, job: EncodeJob, options: RayOptions, actors: Actors, pools: Pools,
                 progress: bool | None) -> None:  # fmt: skip
        self.lane = Lane(job, options, actors, pools)
        self.pools, self.progress = pools, progress

    def start(self) -> dict:
        self.description, self.batch_size = self.lane.start()
        return self.description

    def execute(self, plan: Plan, ledger: Ledger, lease=None) -> None:
        shown = Progress(ledger.summary, plan.videos(), self.progress, [self.pools])
        try:
            for finished in self.lane.steps(plan, ledger, self.description, self.batch_size):
                shown.advance(finished, self.lane.redone)
        finally:
            shown.close()

    def fidelity(self) -> dict | None:
        return self.lane.fidelity()

    def stop(self) -> None:
        self.lane.stop()

    def report(self) -> dict:
        return {"redone": self.lane.redone}
