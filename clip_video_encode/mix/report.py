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
import pyarrow.parquet as pq

from .inputs import column_at
from .plan import KEPT, NOT_DRAWN, REASONS, Plan, Side, kind_counts

REPORT = "mix_report.json"
PAIRS = "mix_pairs.parquet"
PNG = "mix_similarity.png"
EPS_GRID = (0.005, 0.01, 0.02, 0.03, 0.05, 0.1, 0.15, 0.2, 0.3)


def _window(values: np.ndarray) -> pa.Array:
    return pa.array(np.where(np.isinf(values), np.nan, values), pa.float64(), from_pandas=True)


def _ids(items, side: Side, rows: np.ndarray, successes_only: bool) -> list:
    """The ``id`` of some rows, read again from their inputs (the plan holds no text)."""
    out: list = [None] * len(rows)
    for g in np.unique(side.group[rows]).tolist():
        at = np.flatnonzero(side.group[rows] == g)
        values = column_at(items[g], side.shard[rows[at]], side.row[rows[at]], "id",
                           successes_only)  # fmt: skip
        for i, v in zip(at.tolist(), values, strict=True):
            out[i] = v
    return out


def pairs_table(plan: Plan) -> pa.Table:
    """One row per removed row: it (``a``) and the row it duplicates or leaks from (``b``),
    in the order of the inputs' rows."""
    removed = np.flatnonzero(plan.reason >= 0)
    reason = plan.reason[removed]
    partner = plan.partner[removed]
    from_excl = reason <= 1
    mix, excl = plan.mix, plan.excl
    kinds_in = [i.kind for i in plan.inputs]
    kinds_ex = [e.kind for e in plan.excludes]
    b_mix, b_excl = partner[~from_excl], partner[from_excl]

    def merged(values_mix: list, values_excl: list) -> list:
        out: list = [None] * len(removed)
        for i, v in zip(np.flatnonzero(~from_excl).tolist(), values_mix, strict=True):
            out[i] = v
        for i, v in zip(np.flatnonzero(from_excl).tolist(), values_excl, strict=True):
            out[i] = v
        return out

    names_in = [i.name for i in plan.inputs]
    names_ex = [e.name for e in plan.excludes]
    start_b = np.zeros(len(removed))
    end_b = np.zeros(len(removed))
    start_b[~from_excl], end_b[~from_excl] = mix.start[b_mix], mix.end[b_mix]
    start_b[from_excl], end_b[from_excl] = excl.start[b_excl], excl.end[b_excl]
    return pa.table({
        "dataset_a": pa.array([names_in[g] for g in mix.group[removed].tolist()], pa.string()),
        "key_a": pa.array(mix.key_of(removed, kinds_in), pa.string()),
        "id_a": pa.array(_text(_ids(plan.inputs, mix, removed, True)), pa.string()),
        "source": plan.source_of(mix.code[removed]),
        "start_a": _window(mix.start[removed]),
        "end_a": _window(mix.end[removed]),
        "reason": pa.array([REASONS[r] for r in reason], pa.string()),
        "cosine": pa.array(plan.cosine[removed], pa.float32(), from_pandas=True),
        "dataset_b": pa.array(merged([names_in[g] for g in mix.group[b_mix].tolist()],
                                     [names_ex[g] for g in excl.group[b_excl].tolist()]),
                              pa.string()),
        "key_b": pa.array(merged(mix.key_of(b_mix, kinds_in), excl.key_of(b_excl, kinds_ex)),
                          pa.string()),
        "id_b": pa.array(_text(merged(_ids(plan.inputs, mix, b_mix, True),
                                      _ids(plan.excludes, excl, b_excl, False))), pa.string()),
        "start_b": _window(start_b),
        "end_b": _window(end_b),
    })  # fmt: skip


def _text(values: list) -> list:
    return [None if v is None else str(v) for v in values]


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
    excl_group = plan.excl.group
    kinds = {"inputs": kind_counts(plan.mix), "excludes": kind_counts(plan.excl)}
    notes = list(plan.notes)
    for side, counts_ in kinds.items():
        if counts_.get("path"):
            notes.append(f"{counts_['path']} rows of the {side} name files that could not be"
                         " read: each is the same source only as rows naming its path")  # fmt: skip
        if counts_.get("none"):
            notes.append(f"{counts_['none']} rows of the {side} have no location: they are"
                         " compared with no other row by source")  # fmt: skip
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
        "identity_kinds": kinds,
        "similarity": similarity(plan),
        "notes": notes,
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
