"""One type per copied field across the inputs of a mix, for the parquet and the card.

Datasets copy their input's extra columns (a converter's ``label``, ``captions``,
``youtube_id``, ...) into ``KEY.json`` and the parquet, each with its own types. In the mix
every shard's parquet must have one schema, and the card must declare one type per field that
every sample's ``KEY.json`` fits (Hugging Face ``datasets`` stops at the first that does
not). So the types are merged: one type where the inputs agree, float64 for numbers of two
kinds, text (JSON for other values) when they disagree otherwise; values are converted to
the merged type as they are written (:func:`coerce`). Provenance fields are added as text.
"""

from __future__ import annotations

import json

import fsspec
import pyarrow as pa
import pyarrow.parquet as pq

from video2numpy.jsonsafe import dumps

from ..commit.card import arrow_feature, merge_features
from ..commit.writer import PARQUET_COLUMNS

PROVENANCE = ("source_dataset", "source_key", "source_id")


def dataset_fields(shards: list[str]) -> dict[str, tuple[pa.DataType, dict | None]]:
    """A dataset's copied fields: ``name -> (parquet type, card feature)``. A dataset made
    from input tars records its json fields' types in each shard's stats (its parquet holds
    them as text)."""
    if not shards:
        return {}
    first = shards[0][: -len(".tar")]
    with fsspec.open(f"{first}.parquet", "rb") as f:
        schema = pq.read_schema(f)
    json_fields: dict = {}
    for shard in shards:
        with fsspec.open(f"{shard[: -len('.tar')]}_stats.json", "r") as f:
            for name, feature in json.load(f).get("json_fields", {}).items():
                json_fields[name] = merge_features(json_fields.get(name), feature)
    out = {}
    for f in schema:
        if f.name in PARQUET_COLUMNS or f.name in PROVENANCE:
            continue
        kind = pa.string() if pa.types.is_null(f.type) else f.type
        feature = json_fields.get(f.name) if f.name in json_fields else arrow_feature(kind)
        out[f.name] = (kind, feature)
    return out


def merge_types(a: pa.DataType, b: pa.DataType) -> pa.DataType:
    if a == b:
        return a
    numeric = (pa.types.is_integer, pa.types.is_floating)
    if any(t(a) for t in numeric) and any(t(b) for t in numeric):
        return pa.float64()
    return pa.string()


def merge_fields(per_input: list[dict]) -> dict[str, tuple[pa.DataType, dict | None]]:
    """The fields of several inputs, merged (first-seen order), then the provenance."""
    merged: dict[str, tuple[pa.DataType, dict | None]] = {}
    for fields in per_input:
        for name, (kind, feature) in fields.items():
            if name in merged:
                old_kind, old_feature = merged[name]
                kind, feature = merge_types(old_kind, kind), merge_features(old_feature, feature)
            merged[name] = (kind, feature)
    for name in PROVENANCE:
        merged[name] = (pa.string(), {"dtype": "string"})
    return merged


def coerce(value, kind: pa.DataType, feature: dict | None):
    """``(parquet value, KEY.json value)`` of one field's value under the merged types."""
    if value is None:
        return None, None
    as_json = value
    if feature == {"dtype": "string"} and not isinstance(value, str):
        as_json = dumps(value)
    elif feature == {"dtype": "float64"} and isinstance(value, int) and not isinstance(
            value, bool):  # fmt: skip
        as_json = float(value)
    if pa.types.is_string(kind):
        return (value if isinstance(value, str) else dumps(value)), as_json
    if pa.types.is_floating(kind) and isinstance(value, (int, float)):
        return float(value), as_json
    return value, as_json
