"""Several lanes for a cluster whose encoders outrun one driver process (``--pipelines``).

One process can schedule and write only so many videos a second (``bench/driver_ceiling.py``
measures it); eight GPUs encoding 10-frame clips make more. So the cluster's decoders and
encoders are split into pipelines: actors on the driver's machine, each running the same
:class:`~.ray_lane.Lane` the driver runs alone, with its own decoders and encoders. They
take shards one at a time from a queue and commit them themselves; the driver keeps the
lease, the run's plan and the exactly-once bookkeeping:

- the queue (an actor) knows which pipeline holds which shard; a pipeline that dies (its
  process killed, the OOM killer) gives its shards back, and the driver puts back those
  without a commit marker; one committed just before the death is counted from its marker;
- a pipeline's decoders and encoders are its own actors and die with it; a fresh pipeline
  takes its place;
- the run's counts come from committed shards' stats, so a shard done twice (lost, then
  redone) counts once;
- pipelines run on the driver's machine, so input tars and tables on its disk are read as
  in a one-lane run, and a driver that dies takes them with it: a rerun resumes at the
  uncommitted shards, as always.
"""

from __future__ import annotations

import json
import threading
import time
from collections import Counter, deque

from ..commit.ledger import Ledger
from ..commit.samples import Summary
from ..destination.folder import open_destination, stats_path
from ..destination.lease import Lease
from ..plan.job import EncodeJob
from ..plan.run_file import Plan
from .ray_actors import Actors, _load_error
from .ray_lane import Lane
from .ray_plan import Pools, RayOptions, same_encoders
from .ray_progress import Progress

REPORT_SECONDS = 0.5  # a pipeline reports its progress at most this often (and on commits)


class Stopped(Exception):
    """The driver asked this pipeline to stop (it is stopping the run)."""


class ShardQueue:
    """The shards left to do, by their position in the run's list (a Ray actor): which
    pipeline holds which is known here, where no pipeline's death can lose it."""

    def __init__(self, n: int) -> None:
        self.todo = deque(range(n))
        self.held: dict[int, set[int]] = {}

    def take(self, pipeline: int) -> int | None:
        if not self.todo:
            return None
        shard = self.todo.popleft()
        self.held.setdefault(pipeline, set()).add(shard)
        return shard

    def done(self, pipeline: int, shard: int) -> None:
        self.held.get(pipeline, set()).discard(shard)

    def lost(self, pipeline: int) -> list[int]:
        """The shards a dead pipeline held; the driver puts back those not committed."""
        return sorted(self.held.pop(pipeline, set()))

    def give_back(self, shards: list[int]) -> None:
        self.todo.extendleft(reversed(shards))


class _Counted(Summary):
    """A pipeline's summary: remembers the shards it committed, for its next report."""

    def __init__(self, dest: str) -> None:
        super().__init__(0, 0, dest)
        self.committed: list[dict] = []

    def shard_done(self, stats: dict) -> None:
        super().shard_done(stats)
        self.committed.append(stats)


class Pipeline:
    """One lane in its own process on the driver's machine (a Ray actor)."""

    def __init__(self, job: EncodeJob, options: RayOptions, actors: Actors, pools: Pools):
        self.lane = Lane(job, options, actors, pools)
        self.job = job
        self.started: tuple[dict, int] | None = None
        self.stopping = threading.Event()

    def start(self) -> tuple[dict, int]:
        if self.started is None:
            self.started = self.lane.start()
        return self.started

    def close(self) -> None:
        """Stop this pipeline's decoders (their scratch folders removed) and encoders."""
        self.lane.stop()

    def stop_soon(self) -> None:
        """Stop at the next step, removing the shard in progress (the driver is stopping)."""
        self.stopping.set()

    def run(self, plan: Plan, queue, number: int, guard):
        """Take shards from ``queue`` and encode them; yields reports: ``{"videos": n,
        "committed": [stats, ...], "redone": n}``, and lastly the encoders' ``fidelity``."""
        import ray

        description, batch_size = self.start()
        fs, dest = open_destination(self.job.dest)
        summary = _Counted(dest)
        ledger = Ledger(fs, dest, summary, None, guard)  # the driver keeps the card
        todo = plan.todo
        positions = {shard.name: i for i, shard in enumerate(todo)}

        def taken():
            while (i := ray.get(queue.take.remote(number))) is not None:
                yield todo[i]

        def report(videos: int) -> dict:
            """What the driver hears; the queue first learns which shards are committed."""
            for stats in summary.committed:
                queue.done.remote(number, positions[stats["shard"]])
            committed, summary.committed = summary.committed, []
            return {"videos": videos, "committed": committed, "redone": self.lane.redone}

        videos, reported = 0, time.monotonic()
        for finished in self.lane.steps(plan, ledger, description, batch_size, taken()):
            if self.stopping.is_set():
                raise Stopped("the driver stopped the run")
            videos += finished
            if summary.committed or time.monotonic() - reported > REPORT_SECONDS:
                yield report(videos)
                videos, reported = 0, time.monotonic()
        yield {**report(videos), "fidelity": self.lane.fidelity()}


class PipelinesExecutor:
    """One pipeline per entry of ``pools``, each a lane in an actor on the driver's machine;
    the driver keeps the lease, the plan and the run's ledger."""

    def __init__(self, job: EncodeJob, options: RayOptions, actors: Actors, pools: list[Pools],
                 progress: bool | None) -> None:  # fmt: skip
        self.job, self.options, self.actors = job, options, actors
        self.pools, self.progress = pools, progress
        self.pipelines: dict = {}
        self.driver: _Driver | None = None

    def start(self) -> dict:
        import ray
        from ray.util.scheduling_strategies import NodeAffinitySchedulingStrategy

        node = ray.get_runtime_context().get_node_id()
        self.here = NodeAffinitySchedulingStrategy(node, soft=False)
        # Threaded, so that stop_soon reaches a pipeline busy in run.
        self.pipeline_actor = ray.remote(Pipeline).options(
            num_cpus=0, scheduling_strategy=self.here, max_concurrency=2
        )
        self.pipelines.update({
            i: self.pipeline_actor.remote(self.job, self.options, self.actors, p)
            for i, p in enumerate(self.pools)
        })  # fmt: skip
        try:
            started = ray.get([p.start.remote() for p in self.pipelines.values()])
        except ray.exceptions.RayTaskError as exc:  # the model failed to load: say why
            raise _load_error(exc.cause) from None
        return same_encoders(started)[0]

    def execute(self, plan: Plan, ledger: Ledger, lease: Lease) -> None:
        self.driver = _Driver(plan, ledger, lease, self.pipelines, self.pools, self.progress,
                              self.here)  # fmt: skip
        self.driver.go(self.pipeline_actor, self.job, self.options, self.actors)

    def fidelity(self) -> dict | None:
        checks = self.driver.fidelity if self.driver is not None else []
        return min(checks, key=lambda c: c["min_cosine"]) if checks else None

    def stop(self) -> None:
        import ray

        closing = [p.close.remote() for p in self.pipelines.values()]
        if closing:  # a pipeline that does not answer soon is killed with its actors
            ray.wait(closing, num_returns=len(closing), timeout=10.0)
        for pipeline in self.pipelines.values():
            ray.kill(pipeline)

    def report(self) -> dict:
        return {"redone": self.driver.redone if self.driver is not None else 0}


class _Driver:
    """The driver's side: hands the plan to the pipelines, follows their reports, replaces
    pipelines that die, and keeps the run's counts from committed shards."""

    def __init__(self, plan: Plan, ledger: Ledger, lease: Lease, pipelines: dict, pools,
                 progress, here):  # fmt: skip
        import ray

        self.here = here  # the driver's node, where pipelines and the queue run
        self.ray, self.plan, self.ledger, self.lease = ray, plan, ledger, lease
        self.fs, self.dest = ledger.fs, ledger.dest
        self.pipelines, self.pools = pipelines, pools
        self.summary: Summary = ledger.summary
        self.shown = Progress(self.summary, plan.videos(), progress, pools)
        self.generation = Counter()  # pipeline -> how many times it was replaced
        self.redone_by: dict[tuple[int, int], int] = {}  # a pipeline's lane's redone decodes
        self.lost_videos = 0  # videos of shards given back by dead pipelines
        self.fidelity: list[dict] = []

    @property
    def redone(self) -> int:
        return sum(self.redone_by.values()) + self.lost_videos

    def go(self, pipeline_actor, job, options, actors) -> None:
        ray = self.ray
        self.queue = ray.remote(ShardQueue).options(num_cpus=0, scheduling_strategy=self.here)
        self.queue = self.queue.remote(len(self.plan.todo))
        plan = ray.put(self.plan)
        guard = self.lease.checker()
        running = {p.run.remote(plan, self.queue, i, guard): i for i, p in self.pipelines.items()}
        checked = time.monotonic()
        try:
            while running:
                ready, _ = ray.wait(list(running), num_returns=1, timeout=1.0)
                if time.monotonic() - checked > 1.0:  # a read of the lease (a GET on S3)
                    self.lease.check()  # a run that lost its lease stops, whoever commits
                    checked = time.monotonic()
                for generator in ready:
                    number = running[generator]
                    try:
                        report = ray.get(next(generator))
                    except StopIteration:
                        del running[generator]
                        continue
                    except (ray.exceptions.RayActorError, ray.exceptions.ObjectLostError):
                        del running[generator]
                        fresh = self._replace(number, pipeline_actor, job, options, actors)
                        running[fresh.run.remote(plan, self.queue, number, guard)] = number
                        continue
                    except ray.exceptions.RayTaskError as exc:  # as a one-lane run raises it
                        raise (exc.cause if isinstance(exc.cause, Exception) else exc) from None
                    self._take(number, report)
        except BaseException:
            self._stop_all(running)
            raise
        finally:
            self.shown.close()

    def _take(self, number: int, report: dict) -> None:
        for stats in report["committed"]:
            self._count(stats)
        self.redone_by[number, self.generation[number]] = report["redone"]
        if report.get("fidelity"):
            self.fidelity.append(report["fidelity"])
        self.shown.advance(report["videos"], self.redone)

    def _count(self, stats: dict) -> None:
        """A committed shard, into the run's counts and the dataset card. The counts are of
        the rows done in this run (all of them, but for a --retry-failed shard)."""
        done = stats.get("done_here", stats)
        self.summary.statuses.update(done["status_dict"])
        self.summary.frames += done["frames"]
        self.ledger.committed(stats)

    def _replace(self, number: int, pipeline_actor, job, options, actors):
        """A pipeline died: its uncommitted shards go back first in the queue; a fresh
        pipeline (with fresh decoders and encoders) takes its place."""
        ray = self.ray
        ray.kill(self.pipelines[number])
        todo, retries = self.plan.todo, self.plan.retries
        back = []
        for i in ray.get(self.queue.lost.remote(number)):
            marker = stats_path(self.dest, todo[i].name)
            if todo[i].name not in retries and self.fs.exists(marker):
                with self.fs.open(marker) as f:  # committed; its report died with the pipeline
                    self._count(json.load(f))
            else:
                back.append(i)
        ray.get(self.queue.give_back.remote(back))
        self.lost_videos += sum(todo[i].size or 0 for i in back)
        self.generation[number] += 1
        fresh = pipeline_actor.remote(job, options, actors, self.pools[number])
        self.pipelines[number] = fresh
        return fresh

    def _stop_all(self, running: dict) -> None:
        """Ask every pipeline to stop and remove its shard in progress; wait a little."""
        ray = self.ray
        for pipeline in self.pipelines.values():
            pipeline.stop_soon.remote()
        deadline = time.monotonic() + 30
        for generator in running:
            while time.monotonic() < deadline:
                try:
                    ray.get(next(generator), timeout=max(0.1, deadline - time.monotonic()))
                except StopIteration:
                    break
                except Exception:  # Stopped, a dead pipeline, a timeout: it is done
                    break
