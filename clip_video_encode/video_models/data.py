"""Reading a dataset for training and evaluation: padded frame sequences, their metadata, and
text embeddings computed once by the dataset's own model and cached beside it.

Everything streams shard by shard: nothing here holds more than one shard of frames, so a
dataset of millions of videos is read in flat memory.
"""

from __future__ import annotations

import hashlib
import io
import json
import os
import re
from collections.abc import Iterator
from dataclasses import dataclass

import fsspec
import numpy as np
import pyarrow.parquet as pq
from tqdm import tqdm

from ..read import shard_samples, shard_urls
from .aggregators import frames_for

# Values of the split column that mean "held out" (LAION's splits.csv and HF's names).
VALIDATION_SPLITS = ("val", "valid", "validation", "test", "eval")
TEXT_CACHE = "_text_embeddings"


@dataclass
class Videos:
    """A batch of videos: frames padded to one length, the mask of real frames, metadata."""

    frames: np.ndarray  # (n, length, dim) float16
    mask: np.ndarray  # (n, length) bool
    metas: list[dict]

    def __len__(self) -> int:
        return len(self.metas)


def shard_name(url: str) -> str:
    name = url.rstrip("/").rsplit("/", 1)[-1]
    return name[: -len(".tar")] if name.endswith(".tar") else name


def iter_shard(url: str) -> Iterator[tuple[int, str, np.ndarray | None, dict]]:
    """``(row, key, embeddings or None, KEY.json)`` of every row of one shard, in order
    (``row`` is the parquet row, which the text cache is aligned with)."""
    for row, (key, embeddings, meta) in enumerate(shard_samples(url, include_failed=True)):
        yield row, key, embeddings, meta


def iter_batches(
    dataset: str,
    length: int,
    batch: int = 1024,
    keep=None,
    urls: list[str] | None = None,
    aggregator: str | None = None,
) -> Iterator[tuple[Videos, list[tuple[str, int]]]]:
    """Batches of the videos that succeeded (and that ``keep(meta)`` accepts), in dataset
    order, with ``(shard, row)`` of each. Memory: one batch of padded frames.

    Each video's frames are cut to ``length`` as ``aggregator`` is to see them
    (:func:`~.aggregators.frames_for`): ``center`` gets the middle frame by time chosen from
    all of them (thinned first, its middle is not the video's); any other, or None (frames
    scored one by one), the frames thinned evenly."""
    frames, masks, metas, where = [], [], [], []
    for url in urls if urls is not None else shard_urls(dataset):
        name = shard_name(url)
        for row, key, embeddings, meta in iter_shard(url):
            if embeddings is None or len(embeddings) == 0 or (keep and not keep(meta)):
                continue
            padded, mask = frames_for(aggregator or "", embeddings, meta.get("timestamps"), length)
            frames.append(padded)
            masks.append(mask)
            metas.append({**meta, "key": key})
            where.append((name, row))
            if len(metas) == batch:
                yield Videos(np.stack(frames), np.stack(masks), metas), where
                frames, masks, metas, where = [], [], [], []
    if metas:
        yield Videos(np.stack(frames), np.stack(masks), metas), where


def split_of(meta: dict) -> str | None:
    value = meta.get("split")
    return None if value is None else str(value).lower()


def is_validation(meta: dict, splits: tuple[str, ...] = VALIDATION_SPLITS) -> bool:
    return split_of(meta) in splits


# -- text embeddings ---------------------------------------------------------------------------


def model_id(run: dict, weights: str, sha256: str | None = None) -> str:
    """A folder name for one model and its weights (the text cache of each is its own).

    Weights are known by their digest, not by a path's size and time: a checkpoint replaced
    in place by one of the same size and time (``cp -p``, ``rsync -t``; two checkpoints of
    one architecture saved under one name have the same size) would get the old weights'
    embeddings, and the same weights moved or touched would be embedded again. ``sha256``:
    the digest of the weights that embed the texts (what was loaded), else ``run.json``'s
    ``weights_sha256``, else the file's own digest, else (a tag of a dataset from before
    digests) the name. The model's name is made safe for one folder (``hf-hub:org/name``
    holds a slash) and short."""
    digest = sha256 or run.get("weights_sha256")
    if not digest and os.path.isfile(weights):
        from ..models.weights import file_sha256

        digest = file_sha256(weights)
    digest = str(digest or weights)
    if not re.fullmatch(r"[0-9a-f]{64}", digest):  # a name, or a run.json's odd value: never
        digest = hashlib.sha256(digest.encode("utf-8", "surrogatepass")).hexdigest()  # a path
    model = re.sub(r"[^A-Za-z0-9._-]", "_", str(run.get("model", "model")))[:100]
    model = model.strip(".") or "model"
    return f"{model}-{digest[:16]}"


def shard_texts(dataset: str, shard: str, column: str) -> tuple[list[str], np.ndarray]:
    """The texts of a parquet column of one shard, flattened, and the offsets of each row's
    texts (a list column, such as MSR-VTT's 20 captions, gives several per row; a missing
    text none)."""
    fs, path = fsspec.core.url_to_fs(dataset)
    with fs.open(f"{path.rstrip('/')}/{shard}.parquet", "rb") as f:
        table = pq.read_table(f, columns=[column])
    texts, offsets = [], [0]
    for value in table.column(column).to_pylist():
        if isinstance(value, str):
            value = _maybe_list(value)
        values = value if isinstance(value, list) else [value]
        texts.extend(str(v) for v in values if v not in (None, ""))
        offsets.append(len(texts))
    return texts, np.asarray(offsets, np.int64)


def texts_digest(texts: list[str], offsets: np.ndarray) -> str:
    """What identifies a shard's texts: each text (length-prefixed, so no two lists of texts
    hash alike) and which row each belongs to."""
    h = hashlib.sha256(np.asarray(offsets, np.int64).tobytes())
    for text in texts:
        data = text.encode("utf-8", "surrogatepass")
        h.update(len(data).to_bytes(8, "little") + data)
    return h.hexdigest()


def _maybe_list(value: str):
    """A list column of an input tar is stored as JSON text in the parquet."""
    if value.startswith("["):
        try:
            parsed = json.loads(value)
        except ValueError:
            return value
        if isinstance(parsed, list):
            return parsed
    return value


class TextCache:
    """Text embeddings of a dataset's captions by its own model, one file per shard and
    column: ``DEST/_text_embeddings/MODEL-DIGEST/SHARD.COLUMN.npz`` (embeddings, offsets and
    the digest of the texts they embed), computed once and read back by every later run. The
    folder is named by the digest of the weights (:func:`model_id`): other weights at the
    same path never read these embeddings, the same weights anywhere do.

    A file is used only for the texts it was computed from: the shard's texts are read and
    hashed every time (a parquet column: cheap beside the model), so a dataset written again
    in place, with the same shard names and model but other captions, is embedded again,
    and a shard whose captions did not change is not."""

    def __init__(self, dataset: str, encoder, run: dict, weights: str, batch: int = 256):
        self.dataset, self.encoder, self.batch = dataset.rstrip("/"), encoder, batch
        self.fs, path = fsspec.core.url_to_fs(self.dataset)
        name = model_id(run, weights, getattr(encoder, "weights_sha256", None))
        self.folder = f"{path.rstrip('/')}/{TEXT_CACHE}/{name}"

    def shard(self, shard: str, column: str) -> tuple[np.ndarray, np.ndarray]:
        """``(embeddings (n_texts, dim) float16, offsets (rows + 1,))`` of one shard."""
        path = f"{self.folder}/{shard}.{column}.npz"
        texts, offsets = shard_texts(self.dataset, shard, column)
        digest = texts_digest(texts, offsets)
        if self.fs.exists(path):
            with self.fs.open(path, "rb") as f:
                data = np.load(io.BytesIO(f.read()))
                if "texts_sha256" in data.files and str(data["texts_sha256"]) == digest:
                    return data["embeddings"], data["offsets"]
        embeddings = self.embed(texts)
        buf = io.BytesIO()
        np.savez(buf, embeddings=embeddings, offsets=offsets, texts_sha256=np.array(digest))
        self.fs.makedirs(self.folder, exist_ok=True)
        self.fs.pipe_file(path, buf.getvalue())  # whole or absent (a PUT; a small local file)
        return embeddings, offsets

    def embed(self, texts: list[str]) -> np.ndarray:
        parts = [self.encoder.encode_text(texts[lo : lo + self.batch]).astype(np.float16)
                 for lo in range(0, len(texts), self.batch)]  # fmt: skip
        if not parts:
            dim = int(self.encoder.encode_text([""]).shape[1])
            return np.zeros((0, dim), np.float16)
        return np.concatenate(parts)

    def fill(self, column: str, progress: bool | None = None) -> None:
        """Compute what is not cached yet, for every shard (with a progress bar)."""
        names = [shard_name(u) for u in shard_urls(self.dataset)]
        for name in tqdm(names, desc=f"text embeddings ({column})", unit="shard",
                         disable=None if progress is None else not progress):  # fmt: skip
            self.shard(name, column)
