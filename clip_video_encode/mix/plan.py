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
from .inputs import Input, InputError, check_models, iter_batches, pooled_embeddings
from .windows import excluded_partner, first_across_groups, greedy

REASONS = ("excluded_source", "excluded_content", "same_source", "near_duplicate")
KEPT, NOT_DRAWN = -1, -2


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
    """Rows of several inputs, input after input, as arrays (no per-row text: ten million
    rows fit in a few hundred MB). A row's source text is ``sources[code]`` (a code past the
    end: no source); a dataset row's key is ``keys[input][position in that input]``."""

    group: np.ndarray  # the input (index)
    shard: np.ndarray  # a dataset's shard (index); 0 for tables
    row: np.ndarray  # position in the shard or table
    start: np.ndarray
    end: np.ndarray
    kind: np.ndarray  # index into identity.KINDS
    split: np.ndarray  # index into split_names, -1 for none
    success: np.ndarray  # the row succeeded (datasets), or is a table row
    order_key: np.ndarray | None  # --keep longest / largest: smaller stays
    split_names: list[str]
    keys: dict[int, pa.Array]  # dataset inputs' keys, by input
    offsets: np.ndarray  # first row of each input
    code: np.ndarray = field(default_factory=lambda: np.zeros(0, np.int64))

    def __len__(self) -> int:
        return len(self.group)

    def key_of(self, rows: np.ndarray, kinds: list[str]) -> list[str]:
        """Each row's key: a dataset's sample key, a table row's position."""
        out: list = [None] * len(rows)
        groups = self.group[rows]
        for g in np.unique(groups).tolist():
            at = np.flatnonzero(groups == g)
            if kinds[g] == "table":
                values = self.row[rows[at]].astype(str).tolist()
            else:
                values = self.keys[g].take(pa.array(rows[at] - self.offsets[g])).to_pylist()
            for i, v in zip(at.tolist(), values, strict=True):
                out[i] = v
        return out

    def split_of(self, rows: np.ndarray) -> list[str | None]:
        names = [*self.split_names, None]
        return [names[i] for i in self.split[rows].tolist()]


@dataclass
class Plan:
    inputs: list[Input]
    excludes: list[Input]
    options: MixOptions
    mix: Side
    excl: Side
    sources: pa.Array  # the distinct sources; a row's is sources[code]
    reason: np.ndarray  # per mix row: KEPT, NOT_DRAWN or an index into REASONS
    partner: np.ndarray  # the mix row (same_source, near_duplicate) or evaluation row it hit
    cosine: np.ndarray  # for content reasons
    content: ContentResult | None = None
    content_rows: np.ndarray = field(default_factory=lambda: np.zeros(0, np.int64))
    notes: list[str] = field(default_factory=list)

    def input_of(self) -> np.ndarray:
        return self.mix.group

    def kept(self) -> np.ndarray:
        return np.flatnonzero(self.reason == KEPT)

    def source_of(self, codes: np.ndarray) -> pa.Array:
        """The source text of codes (null for rows without a source)."""
        n = len(self.sources)
        valid = codes < n
        taken = self.sources.take(pa.array(np.where(valid, codes, 0), pa.int64())) if n else (
            pa.nulls(len(codes), pa.string()))  # fmt: skip
        return pc.if_else(pa.array(valid), taken, pa.scalar(None, pa.string()))


def _side(items: list[Input], digest, keep: str, successes_only: bool,
          split: str | None, chunks: list) -> Side:  # fmt: skip
    """Read the inputs batch by batch into a :class:`Side`; each batch's source texts are
    appended to ``chunks`` (encoded to codes once both sides are read)."""
    cols: dict[str, list] = {k: [] for k in ("group", "shard", "row", "start", "end", "kind",
                                             "split", "success", "order")}  # fmt: skip
    split_names: list[str] = []
    keys: dict[int, pa.Array] = {}
    offsets, total = [], 0
    for index, item in enumerate(items):
        offsets.append(total)
        item_keys = []
        seen_splits: set = set()  # an evaluation set's splits, when one is asked for
        for batch in iter_batches(item, successes_only=successes_only):
            if split is not None:
                if "split" in batch.column_names:
                    seen_splits.update(batch.column("split").unique().to_pylist())
                batch = _only_split(item, batch, split)
            n = batch.num_rows
            sources, start, end, kind = table_sources(batch, digest)
            chunks.append(sources)
            cols["group"].append(np.full(n, index, np.int32))
            cols["shard"].append(batch.column("_shard").to_numpy().astype(np.int32))
            cols["row"].append(batch.column("_row").to_numpy().astype(np.int32))
            cols["start"].append(start)
            cols["end"].append(end)
            cols["kind"].append(kind)
            cols["split"].append(_split_codes(batch, split_names).astype(np.int16))
            status = batch.column("status") if "status" in batch.column_names else None
            cols["success"].append(np.ones(n, bool) if status is None else pc.equal(
                status, "success").fill_null(False).to_numpy(zero_copy_only=False))  # fmt: skip
            if keep != "first":
                cols["order"].append(_order_key(batch, start, end, keep))
            if item.kind == "dataset":
                item_keys.append(batch.column("key").combine_chunks())
            total += n
            pa.default_memory_pool().release_unused()  # a batch's scratch, back to the system
        if item.kind == "dataset":
            keys[index] = pa.concat_arrays(item_keys) if item_keys else pa.array([], pa.string())
        if split is not None and total == offsets[-1] and seen_splits:
            # A decontamination that removes nothing must not pass quietly (a typo: "vall").
            have = ", ".join(sorted(str(s) for s in seen_splits))
            raise InputError(
                f"--exclude-split {split}: no row of {item.name} is of that split (its"
                f" splits: {have})"
            )
    kinds = {"group": np.int32, "shard": np.int32, "row": np.int32, "start": np.float64,
             "end": np.float64, "kind": np.int8, "split": np.int16, "success": bool,
             "order": np.float64}  # fmt: skip
    arrays = {}
    for k in list(cols):  # one column at a time: its batches freed as it is joined
        parts = cols.pop(k)
        arrays[k] = np.concatenate(parts) if parts else np.zeros(0, kinds[k])
        del parts
    order = arrays.pop("order")
    order = order if keep != "first" else None
    release_memory()
    return Side(**arrays, order_key=order, split_names=split_names, keys=keys,
                offsets=np.asarray(offsets + [total], np.int64))  # fmt: skip


def release_memory() -> None:
    """Give the memory freed by a step back to the system: arrow's pool and the C
    allocator keep freed pages for reuse, which a peak-bound run cannot afford (ten million
    rows' batches leave hundreds of MB otherwise)."""
    import ctypes

    pa.default_memory_pool().release_unused()
    try:
        ctypes.CDLL("libc.so.6").malloc_trim(0)
    except (OSError, AttributeError):
        pass  # not glibc


def _split_codes(batch: pa.Table, names: list[str]) -> np.ndarray:
    if "split" not in batch.column_names:
        return np.full(batch.num_rows, -1, np.int32)
    encoded = pc.dictionary_encode(batch.column("split").combine_chunks())
    for value in encoded.dictionary.to_pylist():
        if value not in names:
            names.append(value)
    mapping = np.array([names.index(v) for v in encoded.dictionary.to_pylist()] + [-1],
                       np.int32)  # fmt: skip
    indices = encoded.indices.fill_null(-1).to_numpy(zero_copy_only=False)
    return mapping[indices]


def _order_key(batch: pa.Table, start: np.ndarray, end: np.ndarray, keep: str) -> np.ndarray:
    """--keep longest: minus the window's length (an open window: the video's duration;
    unknown: longest); largest: minus the pixels (tables: 0)."""

    def numbers(name: str, default: float) -> np.ndarray:
        if name not in batch.column_names:
            return np.full(batch.num_rows, default)
        values = batch.column(name).to_numpy(zero_copy_only=False).astype(np.float64)
        return np.where(np.isnan(values), default, values)

    if keep == "longest":
        ends = np.where(np.isinf(end), numbers("duration", np.inf), end)
        return -(ends - start)
    return -(numbers("width", 0.0) * numbers("height", 0.0))


def _only_split(item: Input, batch: pa.Table, split: str) -> pa.Table:
    if "split" not in batch.column_names:
        raise InputError(f"--exclude-split {split}: {item.name} has no split column")
    from converters.core import normalise_split

    wanted = normalise_split(split)
    values = [normalise_split(v) for v in batch.column("split").to_pylist()]
    return batch.filter(pa.array([v == wanted for v in values]))


def _encode_codes(mix: Side, excl: Side, chunks: list, parts: int | None = None) -> pa.Array:
    """One integer per distinct source over both sides; rows without a source get codes of
    their own past the end (they equal nothing). Returns the distinct sources.

    Encoded in parts (by a sum of each text's bytes, so equal texts share a part), each
    part's hash table alone in memory: ten million sources would otherwise need a table
    of several hundred MB at once."""
    both = pa.chunked_array(chunks, pa.string())
    chunks.clear()
    n = len(both)
    parts = parts or max(1, n // 1_000_000)
    codes = np.full(n, -1, np.int64)
    valid = np.concatenate([c.is_valid().to_numpy(zero_copy_only=False) for c in both.chunks]
                           or [np.zeros(0, bool)])  # fmt: skip
    which = np.concatenate([(_text_sums(c) % parts).astype(np.int16) for c in both.chunks]
                           or [np.zeros(0, np.int16)])  # fmt: skip
    bounds = np.cumsum([0] + [len(c) for c in both.chunks])
    dictionaries, used = [], 0
    for p in range(parts):
        rows = np.flatnonzero(valid & (which == p))
        cut = np.searchsorted(rows, bounds)  # taken chunk by chunk: never all texts at once
        pieces = [c.take(pa.array(rows[cut[i] : cut[i + 1]] - bounds[i]))
                  for i, c in enumerate(both.chunks)]  # fmt: skip
        encoded = pc.dictionary_encode(pa.chunked_array(pieces, pa.string())).combine_chunks()
        del pieces
        codes[rows] = used + encoded.indices.to_numpy(zero_copy_only=False)
        used += len(encoded.dictionary)
        dictionaries.append(encoded.dictionary)
        del encoded
    del both, which
    missing = np.flatnonzero(codes < 0)
    codes[missing] = used + np.arange(len(missing))
    codes = codes.astype(np.int32) if used + len(missing) < 2**31 else codes
    mix.code, excl.code = codes[: len(mix)], codes[len(mix) :]
    sources = pa.concat_arrays(dictionaries) if dictionaries else pa.array([], pa.string())
    dictionaries.clear()
    release_memory()
    return sources


def _text_sums(texts: pa.Array) -> np.ndarray:
    """Per text a cheap function of its content (its length and a few of its bytes; 0 for
    null), read in place from the array's buffers: equal texts, equal numbers."""
    n = len(texts)
    if n == 0:
        return np.zeros(0, np.int64)
    offsets = np.frombuffer(texts.buffers()[1], np.int32, n + 1, texts.offset * 4)
    data = texts.buffers()[2]
    data = np.frombuffer(data, np.uint8) if data is not None else np.zeros(0, np.uint8)
    begin, lengths = offsets[:-1].astype(np.int64), np.diff(offsets).astype(np.int64)
    out = lengths * 1_000_003
    if len(data):
        for at in (begin + lengths // 2, begin + lengths - 1, begin + lengths // 3):
            byte = data[np.clip(at, 0, len(data) - 1)].astype(np.int64)
            out = out * 257 + np.where(lengths > 0, byte, 0)
    return np.abs(out)


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


def keep_rank(mix: Side) -> np.ndarray:
    """Each row's place in keep order (smaller stays): input order, or by ``order_key``
    (input order among equals)."""
    n = len(mix)
    order = np.arange(n)
    if mix.order_key is None:
        return order
    rank = np.empty(n, np.int64)
    rank[np.lexsort((order, mix.order_key))] = order
    return rank


def make_plan(inputs: list[Input], excludes: list[Input], options: MixOptions,
              digest=None, progress=None) -> Plan:  # fmt: skip
    """Decide the mix. ``progress(stage, total)``, when given, returns a callable told of
    each unit done (the pooling of embeddings, which reads every tar)."""
    from .identity import file_digest

    digest = digest or file_digest
    if options.weights and len(options.weights) != len(inputs):
        raise InputError(f"--weights has {len(options.weights)} values for {len(inputs)}"
                         " inputs: give one per input, in input order")  # fmt: skip
    chunks: list = []
    mix = _side(inputs, digest, options.keep, True, None, chunks)
    excl = _side(excludes, digest, "first", False, options.exclude_split, chunks)
    sources = _encode_codes(mix, excl, chunks)
    group = mix.group
    reason = np.full(len(mix), KEPT, np.int8)
    partner = np.full(len(mix), -1, np.int32 if len(mix) < 2**31 else np.int64)
    cosine = np.full(len(mix), np.nan, np.float32)
    for position in range(len(inputs)):
        lo, hi = mix.offsets[position], mix.offsets[position + 1]
        weight = options.weights[position] if options.weights else Weight()
        drawn = draw(int(hi - lo), weight, options.seed, position)
        reason[lo:hi][~drawn] = NOT_DRAWN
    if "source" in options.by:
        _by_source(options, mix, excl, reason, partner)
    plan = Plan(inputs, excludes, options, mix, excl, sources, reason, partner, cosine)
    for item in [*inputs, *excludes]:
        for name, count in item.not_numbers.items():
            plan.notes.append(f"{item.name}: {count} values of {name} are not numbers (seconds"
                              " are): read as missing, so those windows are open")  # fmt: skip
    if "content" in options.by:
        _content(plan, group, keep_rank(mix), progress)
    return plan


def _by_source(options: MixOptions, mix: Side, excl: Side, reason: np.ndarray,
               partner: np.ndarray) -> None:  # fmt: skip
    """Steps 2 and 3: evaluation videos, then same source clips across inputs."""
    # Every row is looked up (no copies of ten million rows); the rows drawn take the answer.
    # --iou is for same source clips: an evaluation window met at all leaks.
    hit = excluded_partner(mix.code, mix.start, mix.end, excl.code, excl.start, excl.end,
                           options.exclude_level)  # fmt: skip
    leak = (hit >= 0) & (reason == KEPT)
    reason[leak], partner[leak] = 0, hit[leak]
    del hit, leak
    live = np.flatnonzero(reason == KEPT)
    every = len(live) == len(mix)  # (then the arrays themselves, not copies)

    def at(values: np.ndarray) -> np.ndarray:
        return values if every else values[live]

    if options.keep == "first" and options.iou is None:
        found = first_across_groups(at(mix.code), at(mix.start), at(mix.end), at(mix.group))
    else:
        found = greedy(at(mix.code), at(mix.start), at(mix.end), at(mix.group),
                       at(keep_rank(mix)), options.iou)  # fmt: skip
    dup = np.flatnonzero(found >= 0)
    reason[live[dup]], partner[live[dup]] = 2, live[found[dup]]
    del found, dup
    release_memory()


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
    excl_kinds = np.array([e.kind == "dataset" for e in plan.excludes], bool)
    refs = np.flatnonzero(excl_kinds[plan.excl.group] & plan.excl.success) if len(
        plan.excludes) else np.zeros(0, np.int64)  # fmt: skip
    update = progress("pooling embeddings", len(live) + len(refs)) if progress else None
    mix_emb = _embeddings(plan.inputs, plan.mix, live, update)
    ref_emb = _embeddings(plan.excludes, plan.excl, refs, update)
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
    which, shards, positions = side.group[rows], side.shard[rows], side.row[rows]
    for index in np.unique(which):
        at = np.flatnonzero(which == index)
        out[at] = pooled_embeddings(items[index], shards[at], positions[at], progress)
    return out


def kind_counts(side: Side) -> dict[str, int]:
    counts = np.bincount(side.kind.astype(np.int64), minlength=len(KINDS))
    return {k: int(c) for k, c in zip(KINDS, counts, strict=True) if c}
