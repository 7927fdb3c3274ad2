"""``clip-video-caption eval``: predictions against references, with their chance level.

Ids are matched as text. A prediction id without references, or a reference id without a
prediction, is an error by default (``--missing error``): an id spelt differently on the two
sides (``video1`` and ``video1.mp4``) would otherwise be scored on a fraction of the set
without a word. ``--missing skip`` scores the ids both sides have; ``--missing empty`` scores
every reference id, a missing prediction as an empty caption (predictions without references
are left out). The counts are always reported.

The chance level is the score of the same predictions given to other videos: the predictions
permuted among the ids (a fixed seed), so it is what a captioner that ignores the video would
get with this caption style, against these references.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from video2numpy.encodings import check_encoding

from .formats import read_captions
from .metrics import METRICS, score

MISSING = ("error", "skip", "empty")


@dataclass(frozen=True)
class EvalOptions:
    pred_format: str = "auto"
    refs_format: str = "auto"
    encoding: str | None = None
    refs_encoding: str | None = None
    id_field: str | None = None
    caption_field: str | None = None
    refs_id_field: str | None = None
    refs_caption_field: str | None = None
    missing: str = "error"
    tokenizer: str = "auto"
    meteor: bool = True
    chance: bool = True

    def __post_init__(self) -> None:
        if self.missing not in MISSING:
            raise ValueError(f"--missing must be one of {', '.join(MISSING)}")
        if self.tokenizer not in ("auto", "ptb", "python"):
            raise ValueError("--tokenizer must be auto, ptb or python")
        check_encoding(self.encoding)
        check_encoding(self.refs_encoding, "--refs-encoding")


def evaluate(pred_path: str, refs_path: str, options: EvalOptions = EvalOptions()) -> dict:
    """Scores of the predictions in ``pred_path`` against ``refs_path``; see :func:`score`
    for the result's fields, plus ``counts`` and ``chance``."""
    preds_all = read_captions(pred_path, "predictions", options.pred_format, options.encoding,
                              options.id_field, options.caption_field)  # fmt: skip
    refs_all = read_captions(refs_path, "references", options.refs_format,
                             options.refs_encoding or options.encoding,
                             options.refs_id_field, options.refs_caption_field)  # fmt: skip
    preds = _one_each(preds_all, pred_path)
    refs = {k: v for k, v in refs_all.items() if v}
    empty_refs = sorted(k for k, v in refs_all.items() if not v)
    unreferenced = sorted(set(preds) - set(refs))
    unpredicted = sorted(set(refs) - set(preds))
    counts = {
        "predictions": len(preds),
        "references": sum(len(v) for v in refs.values()),
        "reference_ids": len(refs),
        "unreferenced_predictions": len(unreferenced),
        "missing_predictions": len(unpredicted),
        "ids_without_reference_text": len(empty_refs),
    }
    if options.missing == "error" and (unreferenced or unpredicted):
        raise ValueError(_mismatch(pred_path, refs_path, unreferenced, unpredicted, empty_refs))
    if options.missing == "empty":
        preds = {**{k: "" for k in unpredicted}, **preds}
    ids = sorted(set(preds) & set(refs))
    if not ids:
        raise ValueError(
            f"no id of {pred_path} has references in {refs_path} (first ids: predictions"
            f" {sorted(preds)[:3]}, references {sorted(refs)[:3]})"
        )
    preds = {k: preds[k] for k in ids}
    refs = {k: refs[k] for k in ids}
    result = score(refs, preds, options.tokenizer, options.meteor)
    counts["scored"] = len(ids)
    result["counts"] = counts
    result["predictions"] = preds
    result["references"] = refs
    if options.chance and len(ids) > 1:
        shuffled = _permuted(ids)
        other = {i: preds[j] for i, j in zip(ids, shuffled, strict=True)}
        result["chance"] = score(refs, other, result["tokenizer"], options.meteor)["corpus"]
    return result


def _one_each(captions: dict[str, list[str]], path: str) -> dict[str, str]:
    """One prediction per id, as coco-caption requires: an id given twice, even with the
    same caption, is an error (which of a table's rows would be scored?)."""
    out = {}
    for key, values in captions.items():
        if len(values) > 1:
            same = " (the same caption each time)" if len(set(values)) == 1 else ""
            raise ValueError(
                f"{path}: id {key!r} has {len(values)} predicted captions{same}; a prediction"
                " file holds one per id (a table of windows or of several rows per video:"
                " score by key with --id-field key)"
            )
        out[key] = values[0]
    return out


def _mismatch(pred_path, refs_path, unreferenced, unpredicted, empty_refs) -> str:
    parts = []
    if unreferenced:
        parts.append(f"{len(unreferenced)} predicted ids have no references in {refs_path}"
                     f" (e.g. {', '.join(map(repr, unreferenced[:3]))})")  # fmt: skip
    if unpredicted:
        parts.append(f"{len(unpredicted)} reference ids have no prediction in {pred_path}"
                     f" (e.g. {', '.join(map(repr, unpredicted[:3]))})")  # fmt: skip
    if empty_refs:
        parts.append(f"{len(empty_refs)} ids have no reference caption at all")
    return (
        "; ".join(parts) + ". Check that both sides use the same ids, or pass --missing skip"
        " (score the ids both have) or --missing empty (a missing prediction scores as an"
        " empty caption)"
    )


def _permuted(ids: list[str]) -> list[str]:
    """A permutation that moves every id (a derangement by rotation of a shuffled order), so
    no prediction is scored against its own video."""
    order = np.random.default_rng(0).permutation(len(ids))
    rotated = np.roll(order, 1)
    target = [ids[i] for i in order]
    source = [ids[i] for i in rotated]
    mapping = dict(zip(target, source, strict=True))
    return [mapping[i] for i in ids]


def per_sample_table(result: dict):
    """The per-sample scores as a pyarrow table: id, prediction, references, one column per
    metric."""
    import pyarrow as pa

    ids = result["ids"]
    columns = {
        "id": pa.array(ids, pa.string()),
        "prediction": pa.array([result["predictions"][i] for i in ids], pa.string()),
        "references": pa.array([result["references"][i] for i in ids], pa.list_(pa.string())),
    }
    for metric in METRICS:
        if metric in result["per_sample"]:
            columns[metric] = pa.array(result["per_sample"][metric], pa.float64())
    return pa.table(columns)
