"""The mix decided: which rows are drawn, which are removed and why, which stay.

Every row of every input goes through the same steps, in this order:

1. **drawn** by ``--weights`` (a rate or a cap per input; a hash-free draw from ``--seed`` and
   the input's position, so the same command draws the same rows). Rows not drawn take no
   further part: nothing is removed because of a row that is not in the mix.
2. **excluded_source**: its source is in an evaluation set (``--exclude``): any row of such a
   video (``--exclude-level video``, the default) or only rows whose window meets one of the
   evaluation windows (``window``).
3. **same_source**: it is the same source clip as a row of another input that is kept
   (windows overlap, or IoU >= ``--iou``); of two, the one earlier in ``--keep`` order stays.
4. with ``--by content`` (datasets only): **excluded_content**, a near-duplicate of an
   evaluation video, then **near_duplicate**, of a kept row earlier in keep order
   (:mod:`.content`).

The result is plain arrays over the concatenated rows of the inputs (:class:`Plan`).
"""

from __future__ import annotations

import math
from dataclasses import dataclass, field

import numpy as np
import pyarrow as pa
import pyarrow.compute as pc

from .content import ContentResult, deduplicate
from .identity import KINDS, table_sources
from .inputs import Input, InputError, check_models, pooled_embeddings, read_rows
from .windows import excluded_partner, first_across_groups, greedy

REASONS = ("excluded_source", "excluded_content", "same_source", "near_duplicate")
KEPT, NOT_DRAWN = -1, -2
KEEP_ORDERS = ("first", "longest", "largest")


@dataclass(frozen=True)
class Weight:
    """A rate in (0, 1] (written with a decimal point) or a cap on rows (an integer)."""

    rate: float | None = None
    cap: int | None = None

    @classmethod
    def parse(cls, text: str) -> Weight:
        text = text.strip()
        if text.lower() in ("", "all", "*"):
            return cls()
        try:
            if text.isdigit():
                return cls(cap=int(text))
            rate = float(text)
        except ValueError:
            rate = math.nan
        if not 0.0 < rate <= 1.0:
            raise InputError(
                f"--weights {text!r}: a weight is a rate in (0, 1] written with a decimal"
                " point (0.5, 1.0) or a cap on rows (an integer: 1000)"
            )
        return cls(rate=rate)

    def describe(self) -> str:
        return "all" if self.rate is None and self.cap is None else (
            f"rate {self.rate}" if self.rate is not None else f"cap {self.cap}")  # fmt: skip


@dataclass(frozen=True)
class MixOptions:
    by: tuple[str, ...] = ("source",)
    eps: float = 0.05
    clusters: int | None = None  # None: about one per 5000 rows
    keep: str = "first"
    iou: float | None = None  # None: any overlap
    exclude_level: str = "video"
    exclude_split: str | None = None
    weights: tuple[Weight, ...] = ()
    seed: int = 0

    def describe(self) -> dict:
        return {"by": list(self.by), "eps": self.eps, "clusters": self.clusters,
                "keep": self.keep, "iou": self.iou, "exclude_level": self.exclude_level,
                "exclude_split": self.exclude_split,
                "weights": [w.describe() for w in self.weights], "seed": self.seed}  # fmt: skip


@dataclass
class Side:
    """Rows of several inputs, concatenated: which input, where, and their sources."""

    table: pa.Table  # _input, _shard, _row, key, id, split, ... as read
    source: pa.Array  # canonical source text (null: none)
    code: np.ndarray  # the source as an integer (equal sources, equal codes)
    start: np.ndarray
    end: np.ndarray
    kind: np.ndarray  # index into identity.KINDS

    def __len__(self) -> int:
        return self.table.num_rows

    def column(self, name: str) -> list:
        if name not in self.table.column_names:
            return [None] * len(self)
        return self.table.column(name).to_pylist()

    def numbers(self, name: str, default: float) -> np.ndarray:
        if name not in self.table.column_names:
            return np.full(len(self), default)
        values = self.table.column(name).cast(pa.float64()).to_numpy(zero_copy_only=False)
        return np.where(np.isnan(values), default, values)


@dataclass
class Plan:
    inputs: list[Input]
    excludes: list[Input]
    options: MixOptions
    mix: Side
    excl: Side
    reason: np.ndarray  # per mix row: KEPT, NOT_DRAWN or an index into REASONS
    partner: np.ndarray  # the mix row (same_source, near_duplicate) or evaluation row it hit
    cosine: np.ndarray  # for content reasons
    content: ContentResult | None = None
    content_rows: np.ndarray = field(default_factory=lambda: np.zeros(0, np.int64))
    notes: list[str] = field(default_factory=list)

    def input_of(self) -> np.ndarray:
        return self.mix.table.column("_input").to_numpy()

    def kept(self) -> np.ndarray:
        return np.flatnonzero(self.reason == KEPT)


def _side(items: list[Input], tables: list[pa.Table], digest) -> Side:
    parts = []
    for index, table in enumerate(tables):
        parts.append(table.append_column("_input", pa.array(np.full(table.num_rows, index,
                                                                      np.int32))))  # fmt: skip
    table = (pa.concat_tables(parts, promote_options="permissive") if parts
             else pa.table({"_input": pa.array([], pa.int32())}))  # fmt: skip
    sources, starts, ends, kinds = [], [], [], []
    for part in parts:
        s, a, b, k = table_sources(part, digest)
        sources.append(s)
        starts.append(a)
        ends.append(b)
        kinds.append(k)
    source = pa.chunked_array(sources, pa.string()).combine_chunks() if sources else pa.array(
        [], pa.string())  # fmt: skip
    cat = lambda xs, t: np.concatenate(xs) if xs else np.zeros(0, t)  # noqa: E731
    return Side(
        table,
        source,
        np.zeros(len(table), np.int64),
        cat(starts, np.float64),
        cat(ends, np.float64),
        cat(kinds, np.int8),
    )


def _encode_codes(mix: Side, excl: Side) -> None:
    """One integer per distinct source over both sides; rows without a source get codes of
    their own (they equal nothing)."""
    both = pa.chunked_array([mix.source, excl.source], pa.string())
    encoded = pc.dictionary_encode(both).combine_chunks()
    indices = encoded.indices.fill_null(-1).to_numpy(zero_copy_only=False).astype(np.int64)
    missing = np.flatnonzero(indices < 0)
    indices[missing] = len(encoded.dictionary) + np.arange(len(missing))
    mix.code, excl.code = indices[: len(mix)], indices[len(mix) :]


def draw(n: int, weight: Weight, seed: int, position: int) -> np.ndarray:
    """Which of ``n`` rows a weight draws: each row's uniform number from the input's own
    stream (``seed``, ``position``) under the rate, or the ``cap`` smallest."""
    if weight.rate is None and weight.cap is None:
        return np.ones(n, bool)
    u = np.random.default_rng([seed, position]).random(n)
    if weight.rate is not None:
        return u < weight.rate
    drawn = np.zeros(n, bool)
    if weight.cap >= n:
        drawn[:] = True
    elif weight.cap > 0:
        drawn[np.argpartition(u, weight.cap - 1)[: weight.cap]] = True
    return drawn


def keep_rank(mix: Side, keep: str) -> np.ndarray:
    """Each row's place in keep order (smaller stays): input order, or the longest window
    (open windows: the video's duration, unknown counts as longest), or the most pixels."""
    n = len(mix)
    order = np.arange(n)
    if keep == "first":
        return order
    if keep == "longest":
        duration = mix.numbers("duration", np.inf)
        end = np.where(np.isinf(mix.end), duration, mix.end)
        key = -(end - mix.start)
    else:
        key = -(mix.numbers("width", 0) * mix.numbers("height", 0))
    rank = np.empty(n, np.int64)
    rank[np.lexsort((order, key))] = order
    return rank


def make_plan(inputs: list[Input], excludes: list[Input], options: MixOptions,
              digest=None, progress=None) -> Plan:  # fmt: skip
    from .identity import file_digest

    digest = digest or file_digest
    if options.weights and len(options.weights) != len(inputs):
        raise InputError(f"--weights has {len(options.weights)} values for {len(inputs)}"
                         " inputs: give one per input, in input order")  # fmt: skip
    tables = [read_rows(i) for i in inputs]
    excl_tables = [_exclude_rows(e, options.exclude_split) for e in excludes]
    mix, excl = _side(inputs, tables, digest), _side(excludes, excl_tables, digest)
    _encode_codes(mix, excl)
    group = mix.table.column("_input").to_numpy()
    reason = np.full(len(mix), KEPT, np.int8)
    partner = np.full(len(mix), -1, np.int64)
    cosine = np.full(len(mix), np.nan, np.float32)
    offset = 0
    for position, table in enumerate(tables):
        weight = options.weights[position] if options.weights else Weight()
        drawn = draw(table.num_rows, weight, options.seed, position)
        reason[offset : offset + table.num_rows][~drawn] = NOT_DRAWN
        offset += table.num_rows
    live = np.flatnonzero(reason == KEPT)
    hit = excluded_partner(mix.code[live], mix.start[live], mix.end[live], excl.code,
                           excl.start, excl.end, options.exclude_level, options.iou)  # fmt: skip
    reason[live[hit >= 0]], partner[live[hit >= 0]] = 0, hit[hit >= 0]
    live = np.flatnonzero(reason == KEPT)
    rank = keep_rank(mix, options.keep)
    if options.keep == "first" and options.iou is None:
        found = first_across_groups(mix.code[live], mix.start[live], mix.end[live], group[live])
    else:
        found = greedy(mix.code[live], mix.start[live], mix.end[live], group[live], rank[live],
                       options.iou)  # fmt: skip
    reason[live[found >= 0]], partner[live[found >= 0]] = 2, live[found[found >= 0]]
    plan = Plan(inputs, excludes, options, mix, excl, reason, partner, cosine)
    if "content" in options.by:
        _content(plan, group, rank, progress)
    return plan


def _exclude_rows(item: Input, split: str | None) -> pa.Table:
    table = read_rows(item, successes_only=False)
    if split is None:
        return table
    if "split" not in table.column_names:
        raise InputError(f"--exclude-split {split}: {item.name} has no split column")
    from converters.core import normalise_split

    values = [normalise_split(v) for v in table.column("split").to_pylist()]
    return table.filter(pa.array([v == normalise_split(split) for v in values]))


def _content(plan: Plan, group: np.ndarray, rank: np.ndarray, progress) -> None:
    """Near-duplicates by content among the rows still kept that have embeddings (dataset
    inputs), and against the evaluation datasets' rows that succeeded."""
    options = plan.options
    datasets = [i for i in plan.inputs if i.kind == "dataset"]
    if not datasets:
        raise InputError("--by content compares embeddings: give at least one encoded dataset"
                         " (tables have none; --by source works on tables)")  # fmt: skip
    check_models(
        datasets + [e for e in plan.excludes if e.kind == "dataset"],
        "--by content (comparing embeddings)",
    )
    kinds = np.array([i.kind == "dataset" for i in plan.inputs])
    live = np.flatnonzero((plan.reason == KEPT) & kinds[group])
    tables = [i for i in plan.inputs if i.kind == "table"]
    if tables:
        plan.notes.append(f"--by content: {len(tables)} table input(s) have no embeddings;"
                          " their rows were compared by source only")  # fmt: skip
    mix_emb = _embeddings(plan.inputs, plan.mix, live, progress)
    excl_group = plan.excl.table.column("_input").to_numpy()
    excl_kinds = np.array([e.kind == "dataset" for e in plan.excludes], bool)
    status = plan.excl.column("status")
    success = np.array([s == "success" for s in status], bool)
    refs = np.flatnonzero(excl_kinds[excl_group] & success) if len(plan.excludes) else np.zeros(
        0, np.int64)  # fmt: skip
    ref_emb = _embeddings(plan.excludes, plan.excl, refs, progress)
    n = max(len(live) + len(refs), 1)
    k = options.clusters or max(1, n // 5000)
    result = deduplicate(mix_emb, rank[live], options.eps, k, group[live], plan.mix.code[live],
                         ref_emb, options.seed)  # fmt: skip
    leak = result.reference_partner >= 0
    plan.reason[live[leak]] = 1
    plan.partner[live[leak]] = refs[result.reference_partner[leak]]
    plan.cosine[live[leak]] = result.reference_cosine[leak]
    dup = result.partner >= 0
    plan.reason[live[dup]] = 3
    plan.partner[live[dup]] = live[result.partner[dup]]
    plan.cosine[live[dup]] = result.cosine[dup]
    plan.content, plan.content_rows = result, live


def _embeddings(items: list[Input], side: Side, rows: np.ndarray, progress) -> np.ndarray:
    """Pooled embeddings of ``rows`` of a side, input by input."""
    dims = {int(i.run.get("embed_dim") or 0) for i in items if i.kind == "dataset"}
    out = np.zeros((len(rows), max(dims) if dims else 0), np.float16)
    which = side.table.column("_input").to_numpy()[rows]
    shards = side.table.column("_shard").to_numpy()[rows]
    positions = side.table.column("_row").to_numpy()[rows]
    for index in np.unique(which):
        at = np.flatnonzero(which == index)
        out[at] = pooled_embeddings(items[index], shards[at], positions[at], progress)
    return out


def kind_counts(side: Side) -> dict[str, int]:
    counts = np.bincount(side.kind.astype(np.int64), minlength=len(KINDS))
    return {k: int(c) for k, c in zip(KINDS, counts, strict=True) if c}
