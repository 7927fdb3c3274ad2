"""The run's ledger: the shards it has committed, told to the run's counts and to the dataset
card, and the check made before each commit.

An executor's :class:`~.assembly.Assembly` tells it of each shard it commits. With Ray
pipelines the shards are committed in the pipelines' processes, each with a ledger of its
own, and the driver tells the run's ledger of them from their reports.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass

from ..plan.job import EncodeJob
from ..plan.run_file import Plan
from .card import Card, arrow_feature, merge_features
from .samples import Summary


@dataclass
class Ledger:
    fs: object
    dest: str
    summary: Summary
    card: Card | None = None  # webdataset output only: Hugging Face reads tars, not folders
    guard: Callable[[], None] | None = None  # before each commit; raises when the lease is lost

    def check(self) -> None:
        if self.guard is not None:
            self.guard()

    def committed(self, stats: dict) -> None:
        """A shard was committed (its ``_stats.json``)."""
        if self.card is not None:
            self.card.committed(stats)
        self.summary.shard_done(stats)


def open_ledger(
    job: EncodeJob, plan: Plan, fs, dest: str, guard: Callable[[], None] | None = None
) -> Ledger:
    """The run's ledger, its dataset card written first (for webdataset output)."""
    failed = {s["shard"]: s.get("failed", 0) for s in plan.committed}
    summary = Summary(len(plan.shards), len(plan.todo), dest, len(plan.retries), failed)
    if job.output_format != "webdataset":
        return Ledger(fs, dest, summary, None, guard)
    card = Card(fs, dest, plan.settings, plan.captions, job.caption_similarity, plan.splits,
                card_fields(job, plan), plan.committed)  # fmt: skip
    card.write()
    return Ledger(fs, dest, summary, card, guard)


def card_fields(job: EncodeJob, plan: Plan) -> dict[str, dict]:
    """The types of the fields copied into ``KEY.json``: a table's columns as the table types
    them; an input tar's json fields as the committed shards found them (more show as shards
    are read)."""
    if plan.schema is not None:
        return {c: arrow_feature(plan.schema.field(c).type) for c in job.columns.save}
    fields: dict = {}
    for stats in plan.committed:
        for name, feature in stats.get("json_fields", {}).items():
            fields[name] = merge_features(fields.get(name), feature)
    return fields
