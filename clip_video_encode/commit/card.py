"""The dataset card, ``DEST/README.md``: what the dataset is, and the types of its samples.

Hugging Face ``datasets`` reads a folder's ``README.md`` front matter: its ``configs`` say
which files are the data (the tars, not the parquets and stats next to them) and its
``dataset_info.features`` the type of every field. Without declared types the ``webdataset``
builder infers them from the first five samples, and a failed row further on (its
``error_message`` a string where the first five had null) stops the load. So the card
declares every field of ``KEY.json`` once: our own fields with fixed types, a table's
copied columns with the table's types, an input tar's json fields with the types seen so far
(the card is rewritten when a shard brings a new field).

The YAML is the ``datasets`` card format (``sequence`` lists, which every ``datasets``
release from 2.x reads); writing it needs no ``datasets`` install.
"""

from __future__ import annotations

import hashlib
import json
import re

import pyarrow as pa
import yaml

from ..destination.owned import inside

# KEY.json's own fields, in the order they are written, with their Hugging Face types.
RECORD_FEATURES: dict[str, dict] = {
    "key": {"dtype": "string"}, "id": {"dtype": "string"}, "location": {"dtype": "string"},
    "caption": {"dtype": "string"}, "status": {"dtype": "string"},
    "error_message": {"dtype": "string"}, "n_frames": {"dtype": "int64"},
    "timestamps": {"sequence": "float64"}, "duration": {"dtype": "float64"},
    "source_fps": {"dtype": "float64"}, "width": {"dtype": "int64"},
    "height": {"dtype": "int64"}, "rotation": {"dtype": "int64"}, "mirrored": {"dtype": "bool"},
    "start": {"dtype": "float64"}, "end": {"dtype": "float64"}, "split": {"dtype": "string"},
    "warning": {"dtype": "string"},
}  # fmt: skip
SIMILARITY_FEATURE = {"sequence": "float64"}
_SPLIT_NAME = re.compile(r"^\w+(\.\w+)*$")


def arrow_feature(kind: pa.DataType) -> dict:
    """The Hugging Face feature of values of an arrow type as they appear in ``KEY.json``
    (dates and times are ISO text there, decimals numbers)."""
    if pa.types.is_boolean(kind) or pa.types.is_integer(kind):
        return {"dtype": str(kind)}
    if pa.types.is_floating(kind):
        return {"dtype": "float64" if pa.types.is_float16(kind) else str(kind)}
    if pa.types.is_decimal(kind) or pa.types.is_duration(kind):
        return {"dtype": "float64"}
    if pa.types.is_list(kind) or pa.types.is_large_list(kind) or pa.types.is_fixed_size_list(kind):
        return {"sequence": _unsimplified(arrow_feature(kind.value_type))}
    if pa.types.is_struct(kind):
        return {"struct": [{"name": f.name, **arrow_feature(f.type)} for f in kind]}
    return {"dtype": "string"}  # text, dates, times, binary (as text), anything else


def _unsimplified(feature: dict) -> str | dict:
    """``sequence: float64`` for a list of plain values, the full form for nested ones."""
    return feature["dtype"] if list(feature) == ["dtype"] else feature


def value_feature(values: list) -> dict | None:
    """The feature of json values seen in an input tar (None when all are null); values of
    several kinds are declared as text, numbers of both kinds as float64."""
    try:
        kind = pa.array(values).type
    except (pa.ArrowInvalid, pa.ArrowTypeError, OverflowError):
        return {"dtype": "string"}
    return None if pa.types.is_null(kind) else arrow_feature(kind)


def merge_features(a: dict | None, b: dict | None) -> dict | None:
    """One feature for a field two shards typed: the same, the wider number, or text. A
    boolean is no number here: ``datasets`` would read ``true`` as 1.0 where ``KEY.json`` has
    ``true``."""
    if a is None or b is None or a == b:
        return a or b
    numbers = {"int64", "float64", "int32", "float32"}
    if a.get("dtype") in numbers and b.get("dtype") in numbers:
        return {"dtype": "float64"}
    return {"dtype": "string"}


def card_features(embed_dim: int, captions: bool, json_fields: dict[str, dict | None],
                  similarity: bool) -> list[dict]:  # fmt: skip
    """The ``dataset_info.features`` list of one sample of the tars."""
    record = dict(RECORD_FEATURES)
    if similarity:
        record["caption_similarity"] = SIMILARITY_FEATURE
    for name, feature in json_fields.items():
        if name not in record:
            record[name] = feature or {"dtype": "string"}
    features = [
        {"name": "__key__", "dtype": "string"},
        {"name": "__url__", "dtype": "string"},
        {"name": "npy", "dtype": {"array2_d": {"shape": [None, embed_dim], "dtype": "float16"}}},
    ]
    if captions:
        features.append({"name": "txt", "dtype": "string"})
    features.append({"name": "json", "struct": [{"name": k, **v} for k, v in record.items()]})
    return features


def card_splits(shard_splits: dict[str, list[str]] | None) -> list[dict]:
    """``configs[0].data_files``: one Hugging Face split per value of the split column when
    each shard holds one (and the names are valid split names), else one split "train"."""
    if shard_splits and all(len(v) == 1 for v in shard_splits.values()):
        by_split: dict[str, list[str]] = {}
        for name, (split,) in sorted(shard_splits.items()):
            by_split.setdefault(split, []).append(f"{name}.tar")
        if all(_SPLIT_NAME.match(s) for s in by_split):
            return [{"split": s, "path": paths} for s, paths in sorted(by_split.items())]
    return [{"split": "train", "path": "*.tar"}]


def content_stamp(settings: dict, shards: dict[str, str]) -> str:
    """A short hash of what the destination holds: the run's settings and, per committed
    shard, its rows and commit time. Hugging Face ``datasets`` keys its cache of a folder by
    the card (its configs and infos) and the folder's name only, not by the files' content:
    without this, two datasets in folders of the same name, or one folder before and after
    a rerun, share a cache and the second load returns the first's rows."""
    blob = json.dumps({"settings": settings, "shards": sorted(shards.items())}, sort_keys=True,
                      default=str)  # fmt: skip
    return hashlib.sha256(blob.encode()).hexdigest()[:16]


def shard_stamp(stats: dict) -> str:
    """A committed shard's part of :func:`content_stamp`: its rows and when it was committed."""
    return f"{stats.get('rows_sha256')}@{stats.get('end_time')}"


def card_text(settings: dict, features: list[dict], data_files: list[dict], stamp: str = "") -> str:
    config = {"config_name": "default", "data_files": data_files}
    if stamp:  # datasets hashes the config's description into its cache path
        config["description"] = f"clip-video-encode content {stamp}"
    front = {
        "configs": [config],
        "dataset_info": {"features": features},
        "tags": ["clip", "video", "embeddings", "webdataset"],
    }
    sampling = ", ".join(f"{k}={v}" for k, v in settings.get("sampling", {}).items() if v)
    return (
        "---\n" + yaml.safe_dump(front, sort_keys=False, allow_unicode=True) + "---\n\n"
        "# CLIP frame embeddings\n\n"
        f"Per-frame embeddings of `{settings.get('input')}` by open_clip `{settings.get('model')}`"
        f" (`{settings.get('pretrained')}`), {settings.get('embed_dim')} dimensions, float16;"
        f" frames sampled with {sampling or 'the default sampling'}. Written by"
        " clip-video-encode; `run.json` holds every setting.\n\n"
        "Each sample of the `NNNNN.tar` shards is `KEY.npy` (frames x dimensions; zero frames"
        " for a row that failed), `KEY.txt` (the caption, when the input has one) and"
        " `KEY.json` (the row's record: status, error message, per-frame timestamps, ...)."
        " `NNNNN.parquet` holds the records as a table; `NNNNN_stats.json` marks a shard"
        " committed.\n\n"
        "```python\n"
        "import datasets\n"
        'ds = datasets.load_dataset("DEST")  # this folder: the types come from this card\n'
        "```\n"
    )


def write_card(fs, dest: str, text: str) -> None:
    """Write the card whole (an object store's PUT; aside and renamed on a local disk)."""
    from fsspec.implementations.local import LocalFileSystem

    path = inside(dest, f"{dest}/README.md", fs)
    if isinstance(fs, LocalFileSystem):
        with fs.open(inside(dest, f"{path}.partial", fs), "w") as f:
            f.write(text)
        fs.mv(f"{path}.partial", path)
    else:
        fs.pipe_file(path, text.encode())


class Card:
    """The card of one destination, rewritten when what it declares changes."""

    def __init__(
        self,
        fs,
        dest: str,
        settings: dict,
        captions: bool,
        similarity: bool,
        splits: dict[str, list[str]] | None,
        fields: dict[str, dict | None],
        committed: list[dict] = (),
    ) -> None:
        self.fs, self.dest, self.settings = fs, dest, settings
        self.captions, self.similarity, self.splits = captions, similarity, splits
        self.fields = dict(fields)
        self.shards = {stats["shard"]: shard_stamp(stats) for stats in committed}

    def text(self) -> str:
        features = card_features(self.settings["embed_dim"], self.captions, self.fields,
                                 self.similarity)  # fmt: skip
        stamp = content_stamp(self.settings, self.shards)
        return card_text(self.settings, features, card_splits(self.splits), stamp)

    def write(self) -> None:
        write_card(self.fs, self.dest, self.text())

    def committed(self, stats: dict) -> None:
        """A shard was committed: its json fields (input tars) and its stamp; rewritten."""
        for name, feature in stats.get("json_fields", {}).items():
            self.fields[name] = merge_features(self.fields.get(name), feature)
        self.shards[stats["shard"]] = shard_stamp(stats)
        self.write()
