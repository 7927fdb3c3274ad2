"""What a mix removed and why: ``mix_report.json``, ``mix_pairs.parquet``, ``mix_similarity.png``.

The report counts, per input, its rows, those drawn by ``--weights``, those removed by each
reason and those kept; the pairs file has one row per removed row, naming the row it
duplicates or leaks from (both datasets and keys, the reason, the cosine for content reasons,
both windows). With ``--by content`` the report also holds the similarity distributions a
user picks ``eps`` from: per row the highest cosine to an earlier row of its cluster (a row
is removed at ``eps`` when that reaches ``1 - eps``, chains of copies aside) and to an
evaluation row, as histogram counts, as counts at several ``eps``, and as a PNG.

A table row's key is its position in the table (0-based); a dataset row's key is its sample
key there.
"""

from __future__ import annotations

import io
import json

import numpy as np
import pyarrow as pa
import pyarrow.compute as pc
import pyarrow.parquet as pq

from .plan import KEPT, NOT_DRAWN, REASONS, Plan, Side, kind_counts

REPORT = "mix_report.json"
PAIRS = "mix_pairs.parquet"
PNG = "mix_similarity.png"
EPS_GRID = (0.005, 0.01, 0.02, 0.03, 0.05, 0.1, 0.15, 0.2, 0.3)


def row_keys(side: Side, kinds: list[str]) -> pa.Array:
    """Each row's key: its sample key (a dataset's), or its position in the table."""
    n = len(side)
    if n == 0:
        return pa.array([], pa.string())
    position = pc.cast(side.table.column("_row"), pa.string()).combine_chunks()
    if "key" not in side.table.column_names:
        return position
    is_table = np.array([k == "table" for k in kinds], bool)
    use_position = pa.array(is_table[side.table.column("_input").to_numpy()])
    return pc.if_else(use_position, position, side.table.column("key").combine_chunks())


def _text_column(side: Side, name: str) -> pa.Array:
    if name not in side.table.column_names:
        return pa.nulls(len(side), pa.string())
    return side.table.column(name).combine_chunks().cast(pa.string())


def _window(values: np.ndarray) -> pa.Array:
    return pa.array(np.where(np.isinf(values), np.nan, values), pa.float64(), from_pandas=True)


def pairs_table(plan: Plan) -> pa.Table:
    """One row per removed row: it (``a``) and the row it duplicates or leaks from (``b``),
    in the order of the inputs' rows."""
    removed = np.flatnonzero(plan.reason >= 0)
    reason = plan.reason[removed]
    partner = plan.partner[removed]
    from_excl = pa.array(reason <= 1)
    mix, excl = plan.mix, plan.excl
    at_mix = pa.array(np.where(reason <= 1, 0, partner), pa.int64())
    at_excl = pa.array(np.where(reason <= 1, partner, 0), pa.int64())

    def side_b(mix_values: pa.Array, excl_values: pa.Array) -> pa.Array:
        b_mix = (
            mix_values.take(at_mix) if len(mix_values) else pa.nulls(len(removed), mix_values.type)
        )
        b_excl = (
            excl_values.take(at_excl)
            if len(excl_values)
            else pa.nulls(len(removed), excl_values.type)
        )
        return pc.if_else(from_excl, b_excl, b_mix)

    names_in = pa.array([i.name for i in plan.inputs], pa.string())
    names_ex = pa.array([e.name for e in plan.excludes], pa.string())
    group_in = pa.array(mix.table.column("_input").to_numpy().astype(np.int64))
    group_ex = pa.array(excl.table.column("_input").to_numpy().astype(np.int64)
                        if len(excl) else np.zeros(0, np.int64))  # fmt: skip
    keys_in = row_keys(mix, [i.kind for i in plan.inputs])
    keys_ex = row_keys(excl, [e.kind for e in plan.excludes])
    rows = pa.array(removed, pa.int64())
    return pa.table({
        "dataset_a": names_in.take(group_in.take(rows)) if len(removed) else pa.array(
            [], pa.string()),
        "key_a": keys_in.take(rows),
        "id_a": _text_column(mix, "id").take(rows),
        "source": mix.source.take(rows),
        "start_a": _window(mix.start[removed]),
        "end_a": _window(mix.end[removed]),
        "reason": pa.array([REASONS[r] for r in reason], pa.string()),
        "cosine": pa.array(plan.cosine[removed], pa.float32(), from_pandas=True),
        "dataset_b": side_b(names_in.take(group_in), names_ex.take(group_ex)),
        "key_b": side_b(keys_in, keys_ex),
        "id_b": side_b(_text_column(mix, "id"), _text_column(excl, "id")),
        "start_b": side_b(_window(mix.start), _window(excl.start)),
        "end_b": side_b(_window(mix.end), _window(excl.end)),
    })  # fmt: skip


def counts(plan: Plan) -> list[dict]:
    """Per input: rows, drawn, removed by reason, kept."""
    group = plan.input_of()
    out = []
    for index, item in enumerate(plan.inputs):
        reasons = plan.reason[group == index]
        entry = {"name": item.name, "kind": item.kind, "rows": int(len(reasons))}
        if item.kind == "dataset":
            entry["failed_not_mixed"] = item.failed
        entry["drawn"] = int((reasons != NOT_DRAWN).sum())
        entry["removed"] = {r: int((reasons == i).sum()) for i, r in enumerate(REASONS)}
        entry["kept"] = int((reasons == KEPT).sum())
        out.append(entry)
    return out


def similarity(plan: Plan) -> dict | None:
    """The distributions of the cosine of each compared row to its nearest earlier row and
    to its nearest evaluation row, as histograms and as counts at several eps."""
    result = plan.content
    if result is None:
        return None
    eps = plan.options.eps
    grid = sorted({*EPS_GRID, eps})
    edges = np.round(np.linspace(0.0, 1.0, 101), 4)
    out = {"eps": eps, "clusters": result.clusters, "rows_compared": int(len(result.nearest)),
           "histogram_edges": edges.tolist()}  # fmt: skip
    for name, values in (("nearest", result.nearest), ("nearest_evaluation",
                                                       result.nearest_reference)):  # fmt: skip
        values = values[~np.isnan(values)]
        hist = np.histogram(np.clip(values, 0.0, 1.0), edges)[0]
        out[name] = {
            "rows": int(len(values)),
            "histogram": hist.tolist(),
            "below_0": int((values < 0).sum()),
            "at_eps": {f"{e:g}": int((values >= 1.0 - e).sum()) for e in grid},
        }
    out["removed_at_eps"] = {
        "near_duplicate": int((plan.reason == 3).sum()),
        "excluded_content": int((plan.reason == 1).sum()),
    }
    return out


def histogram_png(stats: dict) -> bytes:
    """The two distributions, with the threshold 1 - eps marked."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    edges = np.asarray(stats["histogram_edges"])
    fig, ax = plt.subplots(figsize=(8, 4.5), dpi=100)
    for name, label in (("nearest", "to the nearest earlier row"),
                        ("nearest_evaluation", "to the nearest evaluation row")):  # fmt: skip
        if stats[name]["rows"]:
            ax.stairs(np.asarray(stats[name]["histogram"]) + 0.0, edges, label=label)
    ax.axvline(1.0 - stats["eps"], color="red", linestyle="--",
               label=f"1 - eps = {1.0 - stats['eps']:g}")  # fmt: skip
    ax.set_yscale("symlog")
    ax.set_xlabel("cosine of pooled video embeddings")
    ax.set_ylabel("rows")
    ax.set_title(f"clip-video-mix: similarity ({stats['rows_compared']} rows,"
                 f" {stats['clusters']} clusters)")  # fmt: skip
    ax.legend(loc="upper left")
    buf = io.BytesIO()
    fig.tight_layout()
    fig.savefig(buf, format="png")
    plt.close(fig)
    return buf.getvalue()


def build_report(plan: Plan) -> dict:
    per_input = counts(plan)
    total = {"rows": sum(e["rows"] for e in per_input), "drawn": sum(e["drawn"] for e in
             per_input), "kept": sum(e["kept"] for e in per_input)}  # fmt: skip
    total["removed"] = {r: sum(e["removed"][r] for e in per_input) for r in REASONS}
    excl_group = plan.excl.table.column("_input").to_numpy()
    return {
        "inputs": per_input,
        "excludes": [
            {
                "name": e.name,
                "kind": e.kind,
                "rows": int((excl_group == i).sum()),
                "sources": int(len(np.unique(plan.excl.code[excl_group == i]))),
            }
            for i, e in enumerate(plan.excludes)
        ],  # fmt: skip
        "total": total,
        "options": plan.options.describe(),
        "identity_kinds": {"inputs": kind_counts(plan.mix), "excludes": kind_counts(plan.excl)},
        "similarity": similarity(plan),
        "notes": plan.notes,
        "pairs": PAIRS,
    }


def write_report(fs, folder: str, plan: Plan) -> dict:
    """Write the report, the pairs and (with content) the PNG into ``folder``; each whole or
    not at all (written aside, then moved)."""
    report = build_report(plan)
    buf = io.BytesIO()
    pq.write_table(pairs_table(plan), buf)
    _put(fs, f"{folder}/{PAIRS}", buf.getvalue())
    if report["similarity"] is not None:
        _put(fs, f"{folder}/{PNG}", histogram_png(report["similarity"]))
        report["histogram_png"] = PNG
    _put(fs, f"{folder}/{REPORT}", json.dumps(report, indent=1, allow_nan=False).encode())
    return report


def _put(fs, path: str, data: bytes) -> None:
    from fsspec.implementations.local import LocalFileSystem

    if isinstance(fs, LocalFileSystem):
        with fs.open(f"{path}.partial", "wb") as f:
            f.write(data)
        fs.mv(f"{path}.partial", path)
    else:
        fs.pipe_file(path, data)


def summary_lines(report: dict) -> list[str]:
    """The report as a few lines for the terminal."""
    heads = ("rows", "drawn", "excl.src", "excl.cont", "same.src", "near.dup", "kept")
    width = max([len(e["name"]) for e in report["inputs"]] + [5])
    width = min(width, 60)
    lines = [f"{'input':<{width}} " + " ".join(f"{h:>9}" for h in heads)]
    for e in [*report["inputs"], {"name": "total", **report["total"]}]:
        values = [e["rows"], e["drawn"], *[e["removed"][r] for r in REASONS], e["kept"]]
        name = e["name"] if len(e["name"]) <= width else "..." + e["name"][-(width - 3) :]
        lines.append(f"{name:<{width}} " + " ".join(f"{v:>9}" for v in values))
    sim = report.get("similarity")
    if sim:
        at = sim["nearest"]["at_eps"]
        lines.append("rows with an earlier near-copy at eps: "
                     + ", ".join(f"{e}: {n}" for e, n in at.items()))  # fmt: skip
        ev = sim["nearest_evaluation"]["at_eps"]
        if sim["nearest_evaluation"]["rows"]:
            lines.append("rows near an evaluation video at eps: "
                         + ", ".join(f"{e}: {n}" for e, n in ev.items()))  # fmt: skip
    lines.extend(f"note: {n}" for n in report.get("notes", []))
    return lines
