"""``clip-video-pool``: one embedding per video, written to a parquet file shard by shard.

The output has one row per video that succeeded: ``key``, ``id``, ``caption``, ``split``,
``n_frames`` and ``embedding`` (a fixed-size list of float32, L2-normalised). It is written
one row group per batch, so memory holds one batch of frames however many videos there are.
Each video's frames are cut to ``--max-frames`` as its aggregator needs (``frames_for``):
``center`` takes the middle frame by time from all of them, before any thinning.
"""

from __future__ import annotations

import fsspec
import numpy as np
import pyarrow as pa
import pyarrow.parquet as pq
from tqdm import tqdm

from ..read import shard_urls
from .aggregators import frames_for
from .data import Videos, iter_shard
from .evaluate import Pooler


def pool_dataset(dataset: str, pooler: Pooler, out: str, batch: int = 1024,
                 progress: bool | None = None) -> int:  # fmt: skip
    """Write the pooled embeddings of ``dataset`` to ``out`` (local or fsspec); returns the
    number of videos. The file is written aside and moved into place when complete."""
    schema = pa.schema([
        ("key", pa.string()), ("id", pa.string()), ("caption", pa.string()),
        ("split", pa.string()), ("n_frames", pa.int64()),
        ("embedding", pa.list_(pa.float32(), pooler.dim)),
    ])  # fmt: skip
    fs, path = fsspec.core.url_to_fs(out)
    n = 0
    bar = tqdm(unit="video", desc="pool", disable=None if progress is None else not progress)
    with fs.open(f"{path}.partial", "wb") as f, pq.ParquetWriter(f, schema) as writer:
        for videos in _batches(dataset, pooler, batch):
            embeddings = pooler(videos.frames, videos.mask)
            metas = videos.metas
            table = pa.table({
                "key": [m["key"] for m in metas],
                "id": [None if m.get("id") is None else str(m["id"]) for m in metas],
                "caption": [m.get("caption") for m in metas],
                "split": [None if m.get("split") is None else str(m["split"]) for m in metas],
                "n_frames": [int(m.get("n_frames") or 0) for m in metas],
                "embedding": pa.FixedSizeListArray.from_arrays(
                    pa.array(embeddings.reshape(-1), pa.float32()), pooler.dim),
            }, schema=schema)  # fmt: skip
            writer.write_table(table)
            n += len(metas)
            bar.update(len(metas))
    bar.close()
    fs.mv(f"{path}.partial", path)
    return n


def _batches(dataset: str, pooler: Pooler, batch: int):
    """The videos that succeeded, in dataset order, ``batch`` at a time, each as its
    aggregator is to see it (:func:`frames_for`)."""
    frames, masks, metas = [], [], []
    for url in shard_urls(dataset):
        for _, key, embeddings, meta in iter_shard(url):
            if embeddings is None or len(embeddings) == 0:
                continue
            padded, mask = frames_for(pooler.spec, embeddings, meta.get("timestamps"),
                                      pooler.length)  # fmt: skip
            frames.append(padded)
            masks.append(mask)
            metas.append({**meta, "key": key})
            if len(metas) == batch:
                yield Videos(np.stack(frames), np.stack(masks), metas)
                frames, masks, metas = [], [], []
    if metas:
        yield Videos(np.stack(frames), np.stack(masks), metas)
