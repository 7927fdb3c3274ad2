"""One run, whichever executor: plan -> execute -> commit.

1. The executor starts (loads the encoder, or starts its actors) and describes its encoder;
   a model that cannot load fails here, before the destination is touched.
2. Under the destination's lease, the run is planned (:func:`~..plan.run_file.plan_run`:
   ``run.json`` written or checked, the shards left to do) and its ledger opened
   (:func:`~..commit.ledger.open_ledger`: the dataset card, the counts).
3. The executor decodes and encodes the plan's shards, handing results to the commit path,
   which commits each shard as it completes.
4. What the executor learnt on the way (an engine's fidelity check) is added to ``run.json``;
   the summary comes from the ledger.

The input is read before any of this (:func:`~..plan.source.read_input`), so that an unusable
table costs neither a model load nor a destination.
"""

from __future__ import annotations

from typing import Protocol

from ..commit.ledger import Ledger, open_ledger
from ..destination.folder import open_destination
from ..destination.lease import Lease
from ..plan.job import EncodeJob
from ..plan.run_file import Plan, plan_run, record_in_run
from ..plan.source import Input


class Executor(Protocol):
    def start(self) -> dict:
        """Load the encoder (or start the actors); its ``describe()``, for ``run.json``."""

    def execute(self, plan: Plan, ledger: Ledger, lease: Lease) -> None:
        """Decode and encode the plan's shards; commit them through the ledger."""

    def fidelity(self) -> dict | None:
        """The engine's fidelity check, when it made one (another engine than torch)."""

    def stop(self) -> None:
        """Release what :meth:`start` took (actors); called whatever happened."""

    def report(self) -> dict:
        """What the executor adds to the run's summary."""


def run_job(job: EncodeJob, read: Input, executor: Executor) -> dict:
    """Run ``job`` on its input ``read`` with ``executor``; the run's summary."""
    try:
        description = executor.start()
        fs, dest = open_destination(job.dest)
        with Lease(fs, dest, job.lease_seconds) as lease:  # before anything in dest changes
            plan = plan_run(job, description, fs, dest, read)
            ledger = open_ledger(job, plan, fs, dest, guard=lease.check)
            try:
                executor.execute(plan, ledger, lease)
            finally:
                fidelity = executor.fidelity()
                if fidelity:
                    record_in_run(fs, dest, {"fidelity": fidelity})
            summary = ledger.summary.finish()  # the run's time: not the actors' shutdown
    finally:
        executor.stop()
    return {**summary, **executor.report()}
