"""Writing the mixed dataset: the plan's kept rows resharded into the project's own format.

Layout (DESIGN.md section 3), readable unchanged by the project's reader, webdataset,
Hugging Face ``datasets`` (the card), search and the video-model tools::

    DEST/_mix/plan.parquet   the rows to write, in order, and where each comes from
    DEST/run.json            the model of the embeddings, and the mix: inputs and their
                             identities, evaluation sets, options, the plan's digest
    DEST/NNNNN.tar/.parquet/_stats.json   shards, written by the encoder's ShardWriter
    DEST/README.md, splits.csv            the card; LAION's tar_file,split

Each sample is the input sample as it was (embeddings, caption, record) under a new key,
with its provenance added: ``source_dataset`` (the input as named), ``source_key`` (its key
there), ``source_id`` (its canonical source). Rows are ordered by split (so each shard holds
one split, and the card gives Hugging Face one split per value), then by input, then as in
the input.

Resume, as ``clip-video-encode``: the plan is written before any shard and ``run.json`` after
it; a shard is done when its ``_stats.json`` is there. A rerun with the same inputs (same
identities) and options reads the plan back and writes only the shards not committed; with
other inputs or options it is refused.
"""

from __future__ import annotations

import hashlib
import io
import json

import numpy as np
import pyarrow as pa
import pyarrow.parquet as pq

from ..commit.card import Card
from ..commit.writer import Sample, ShardWriter
from ..destination.folder import committed_shards
from ..plan.shards import key_digits
from .fields import coerce, dataset_fields, merge_fields
from .inputs import Input, InputError, check_models, iter_members
from .plan import Plan

PLAN_PATH = "_mix/plan.parquet"
SPLIT_ORDER = {"train": 0, "val": 1, "test": 2}
# What a rerun must agree on to resume (run.json["mix"]).
BINDING = ("inputs", "excludes", "options", "samples_per_shard")


class MixMismatch(Exception):
    """The destination holds another mix (other inputs, identities or options)."""


def plan_rows(plan: Plan, samples_per_shard: int) -> pa.Table:
    """The kept rows in output order with their output shard, index and key."""
    kept = plan.kept()
    mix = plan.mix
    names = sorted(mix.split_names, key=lambda s: (SPLIT_ORDER.get(s, 9), s))
    rank_of = np.array([names.index(n) for n in mix.split_names] + [len(names)], np.int64)
    split_rank = rank_of[mix.split[kept]]  # -1 (none) takes the last place
    rows = kept[np.lexsort((kept, split_rank))]  # kept is already in input order
    split_values = mix.split_of(rows)
    # A new shard at every split boundary, so that each shard holds one split.
    out_shard = np.zeros(len(rows), np.int64)
    out_index = np.zeros(len(rows), np.int64)
    shard = index = 0
    for i in range(len(rows)):
        if i and (index == samples_per_shard or split_values[i] != split_values[i - 1]):
            shard, index = shard + 1, 0
        out_shard[i], out_index[i] = shard, index
        index += 1
    shards = int(out_shard[-1]) + 1 if len(rows) else 0
    digits = key_digits(samples_per_shard, shards)
    pairs = zip(out_shard.tolist(), out_index.tolist(), strict=True)
    keys = [f"{s:0{digits[0]}d}{i:0{digits[1]}d}" for s, i in pairs]
    kinds = [i.kind for i in plan.inputs]
    return pa.table({
        "input": pa.array(mix.group[rows], pa.int32()),
        "shard": pa.array(mix.shard[rows], pa.int32()),
        "row": pa.array(mix.row[rows], pa.int64()),
        "source_key": pa.array(mix.key_of(rows, kinds), pa.string()),
        "source_id": plan.source_of(mix.code[rows]),
        "split": pa.array(split_values, pa.string()),
        "out_shard": pa.array(out_shard, pa.int32()),
        "out_index": pa.array(out_index, pa.int32()),
        "key": pa.array(keys, pa.string()),
    })  # fmt: skip


def shard_names(rows: pa.Table, samples_per_shard: int) -> list[str]:
    count = (max(rows.column("out_shard").to_pylist()) + 1) if rows.num_rows else 0
    digits = key_digits(samples_per_shard, count)[0]
    return [f"{s:0{digits}d}" for s in range(count)]


def table_bytes(table: pa.Table) -> bytes:
    buf = io.BytesIO()
    pq.write_table(table, buf)
    return buf.getvalue()


def mix_settings(inputs: list[Input], excludes: list[Input], plan_options: dict,
                 samples_per_shard: int) -> dict:  # fmt: skip
    """``run.json`` of the mix: what the downstream tools read (the model, the embedding
    size, the sampling when the inputs share it) and the mix itself."""
    from ..plan.run_file import run_versions

    model = check_models(inputs, "a mixed dataset (one run.json names its model)")
    first = inputs[0].run
    common = {}
    for name in ("sampling", "resize", "weights_seed", "normalized", "engine", "precision"):
        values = [json.dumps(i.run.get(name), sort_keys=True) for i in inputs]
        if len(set(values)) == 1 and first.get(name) is not None:
            common[name] = first[name]
    return {
        "tool": "clip-video-mix",
        "input": f"a mix of {len(inputs)} datasets",
        **model,
        **common,
        "samples_per_shard": samples_per_shard,
        "output_format": "webdataset",
        "embedding_dtype": "float16",
        "caption_similarity": any(bool(i.run.get("caption_similarity")) for i in inputs),
        "mix": {
            "inputs": [i.describe() for i in inputs],
            "excludes": [e.describe() for e in excludes],
            "options": plan_options,
            "samples_per_shard": samples_per_shard,
        },
        "versions": run_versions(),
    }


def check_binding(previous: dict, settings: dict, dest: str) -> None:
    old, new = previous.get("mix") or {}, settings["mix"]
    diff = [k for k in BINDING if json.dumps(old.get(k), sort_keys=True) != json.dumps(
        new.get(k), sort_keys=True)]  # fmt: skip
    if diff:
        what = "; ".join(
            f"{k}: {json.dumps(old.get(k))[:300]} there, {json.dumps(new.get(k))[:300]} now"
            for k in diff
        )
        raise MixMismatch(
            f"{dest} holds a mix of other inputs or options ({what}). An input that changed"
            " since (a dataset encoded further, a table edited) has another identity. Use"
            " another --dest, or rerun with the same inputs and options to resume."
        )


def write_dataset(fs, dest: str, settings: dict, plan_table: pa.Table, inputs: list[Input],
                  guard=None, progress=None) -> dict:  # fmt: skip
    """Write (or finish) the mixed dataset from its plan; returns counts. The plan and
    ``run.json`` must already be in place; ``guard()`` runs before each commit (the lease's
    check: it raises when another run has taken the destination); ``progress(stage, total)``
    as for the plan."""
    sps = settings["samples_per_shard"]
    names = shard_names(plan_table, sps)
    fields = merge_fields([dataset_fields(i.shards) for i in inputs])
    types = {name: kind for name, (kind, _) in fields.items()}
    captions = True
    splits_of: dict[str, list[str]] = {}
    by_shard = _split_by_shard(plan_table, len(names))
    for name, rows in zip(names, by_shard, strict=True):
        values = {s for s in rows.column("split").to_pylist() if s is not None}
        splits_of[name] = sorted(values)
    _write_splits(fs, dest, splits_of)
    committed = committed_shards(fs, dest)[0]
    card = Card(fs, dest, settings, captions, settings["caption_similarity"], splits_of,
                {n: f for n, (_, f) in fields.items()}, committed)  # fmt: skip
    card.write()
    done = {s["shard"] for s in committed}
    present = {p.rstrip("/").rsplit("/", 1)[-1] for p in fs.ls(dest, detail=False)}
    todo = sum(r.num_rows for n, r in zip(names, by_shard, strict=True) if n not in done)
    update = progress("writing shards", todo) if progress else None
    written = 0
    for name, rows in zip(names, by_shard, strict=True):
        if name in done:
            continue
        for leaf in (f"{name}_stats.json", f"{name}.tar", f"{name}.parquet"):
            if leaf in present:  # what a failed commit left under our final names
                fs.rm(f"{dest}/{leaf}")
        writer = ShardWriter(fs, dest, name, rows.num_rows, settings["embed_dim"], captions,
                             extra_types=types)  # fmt: skip
        try:
            for sample in _samples(rows, inputs, fields):
                writer.add(sample)
            if guard is not None:
                guard()
            stats = writer.close()
        except BaseException:
            writer.abort()
            raise
        card.committed(stats)
        written += 1
        if update is not None:
            update(rows.num_rows)
    return {"shards": len(names), "shards_written": written, "rows": plan_table.num_rows}


def _split_by_shard(plan_table: pa.Table, count: int) -> list[pa.Table]:
    shard = plan_table.column("out_shard").to_numpy()
    bounds = np.searchsorted(shard, np.arange(count + 1))
    return [plan_table.slice(bounds[s], bounds[s + 1] - bounds[s]) for s in range(count)]


def _samples(rows: pa.Table, inputs: list[Input], fields: dict):
    """The samples of one output shard, in order, read from the input shards they come from
    (each input shard streamed once)."""
    plan = rows.to_pylist()
    wanted: dict[tuple[int, int], dict[int, int]] = {}
    for index, row in enumerate(plan):
        wanted.setdefault((row["input"], row["shard"]), {})[row["row"]] = index
    for (input_index, shard), positions in wanted.items():
        item = inputs[input_index]
        url = item.shards[shard]
        found = 0
        for position, (key, parts) in enumerate(iter_members(url)):
            index = positions.get(position)
            if index is None:
                continue
            row = plan[index]
            if key != row["source_key"] or "json" not in parts or "npy" not in parts:
                raise InputError(
                    f"{url}: sample {position} is not {row['source_key']} as planned: the"
                    " input changed since; use another --dest"
                )
            yield _sample(row, parts, item, fields)
            found += 1
            if found == len(positions):
                break
        if found != len(positions):
            raise InputError(f"{url}: {len(positions) - found} planned samples are missing:"
                             " the input changed since; use another --dest")  # fmt: skip


def _sample(row: dict, parts: dict, item: Input, fields: dict) -> Sample:
    meta = json.loads(parts["json"])
    embeddings = np.load(io.BytesIO(parts["npy"]))
    caption = parts["txt"].decode("utf-8") if "txt" in parts else meta.get("caption")
    meta.update(key=row["key"], source_dataset=item.name, source_key=row["source_key"],
                source_id=row["source_id"])  # fmt: skip
    extra = {}
    for name, (kind, feature) in fields.items():  # every record has every field (None: absent)
        extra[name], meta[name] = coerce(meta.get(name), kind, feature)
    return Sample(row["out_index"], row["key"], meta, embeddings, caption, extra)


def _write_splits(fs, dest: str, splits_of: dict[str, list[str]]) -> None:
    """``splits.csv`` when every shard holds one split (LAION's ``tar_file,split``)."""
    if not splits_of or not all(len(v) == 1 for v in splits_of.values()):
        return
    lines = ["tar_file,split"] + [f"{n}.tar,{v[0]}" for n, v in sorted(splits_of.items())]
    with fs.open(f"{dest}/splits.csv", "w") as f:
        f.write("\n".join(lines) + "\n")


def plan_digest(data: bytes) -> str:
    return hashlib.sha256(data).hexdigest()
