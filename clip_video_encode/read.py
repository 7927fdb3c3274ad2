"""Reading an embedding dataset back: plain iteration, and a torch-ready fixed-length loader.

Only committed shards (those with ``NAME_stats.json``) are read, so a dataset that is still
being written, or was interrupted, reads consistently. The shards are ordinary webdataset
tars: ``webdataset.WebDataset`` and Hugging Face ``datasets`` read them too.
"""

from __future__ import annotations

import hashlib
import io
import json
import tarfile
from collections.abc import Iterator

import fsspec
import numpy as np
import torch.utils.data

from .destination.folder import committed_shards


def shard_urls(dataset: str) -> list[str]:
    """The committed shards of a dataset folder (local or fsspec), in order: ``NAME.tar``,
    or the folder ``NAME`` for ``--output-format files``. Listed afresh on every call (an
    object store's listing cache would hide shards committed since), so a long-lived process
    sees new shards."""
    return _committed(dataset)[0]


def dataset_identity(dataset: str) -> tuple[list[str], str]:
    """The committed shards and a fingerprint of what they hold: ``run.json``'s content and
    each commit marker's name, size and modification stamp. A dataset encoded again at the
    same place (other weights, other frames) gets another fingerprint, even with the same
    shard names."""
    shards, markers = _committed(dataset)
    fs, path = fsspec.core.url_to_fs(dataset)
    h = hashlib.sha256()
    try:
        h.update(fs.cat_file(f"{path.rstrip('/')}/run.json"))
    except FileNotFoundError:
        h.update(b"no run.json")
    for info in markers:
        stamp = [info.get(k) for k in ("ETag", "etag", "LastModified", "mtime", "size")]
        h.update(json.dumps([info["name"].rsplit("/", 1)[-1], stamp], default=str).encode())
    return shards, h.hexdigest()


def hf_features(dataset: str):
    """The Hugging Face ``datasets.Features`` of a dataset's samples, from its card
    (``DEST/README.md``), for the ``webdataset`` builder, which otherwise infers the types
    from the first five samples::

        datasets.load_dataset("webdataset", data_files=f"{DEST}/*.tar",
                              features=hf_features(DEST))
    """
    import datasets
    import yaml

    fs, path = fsspec.core.url_to_fs(dataset)
    text = fs.cat_file(f"{path.rstrip('/')}/README.md").decode("utf-8")
    front = yaml.safe_load(text.split("---\n", 2)[1])
    return datasets.Features._from_yaml_list(front["dataset_info"]["features"])


def _committed(dataset: str) -> tuple[list[str], list[dict]]:
    fs, path = fsspec.core.url_to_fs(dataset)
    stats, markers = committed_shards(fs, path.rstrip("/"))
    shards = [s["_data"] for s in stats]
    return [fs.unstrip_protocol(t) if "://" in dataset else t for t in shards], markers


def iter_samples(
    dataset: str, include_failed: bool = False
) -> Iterator[tuple[str, np.ndarray | None, dict]]:
    """Yield ``(key, embeddings, metadata)`` for every row, in shard and key order.

    ``embeddings`` is float16 ``(n_frames, dim)``; failed rows are skipped unless
    ``include_failed``, in which case their embeddings are ``None``.
    """
    for url in shard_urls(dataset):
        yield from shard_samples(url, include_failed)


def _sample(key: str, parts: dict, include_failed: bool):
    meta = json.loads(parts["json"])
    if meta.get("status") == "success":
        yield key, np.load(io.BytesIO(parts["npy"])), meta
    elif include_failed:
        yield key, None, meta


def read_run(dataset: str) -> dict:
    """A dataset's ``run.json`` (local or fsspec URL)."""
    try:
        with fsspec.open(f"{dataset.rstrip('/')}/run.json", "r") as f:
            return json.load(f)
    except FileNotFoundError as exc:
        message = f"{dataset} has no run.json: not a clip-video-encode dataset"
        raise FileNotFoundError(message) from exc


def run_window(run: dict) -> tuple[float | None, float | None]:
    """The window (``--start``/``--end``, in ``run.json``'s sampling) that every row without
    a window of its own was sampled in."""
    sampling = run.get("sampling") or {}
    return sampling.get("start"), sampling.get("end")


def in_run_window(meta: dict, window: tuple[float | None, float | None]) -> dict:
    """A row's ``KEY.json`` with the run's window where it has no bound of its own, as the
    sampler took it (video2numpy's ``Sampling.with_window``): the span its frames cover, which
    the hierarchy, search's levels and captions cut into windows."""
    start = meta.get("start") if meta.get("start") is not None else window[0]
    end = meta.get("end") if meta.get("end") is not None else window[1]
    if start == meta.get("start") and end == meta.get("end"):
        return meta
    return {**meta, "start": start, "end": end}


def pad_or_truncate(embeddings: np.ndarray, length: int) -> tuple[np.ndarray, np.ndarray]:
    """A ``(length, dim)`` array and a boolean mask of the real frames.

    Longer sequences are thinned evenly, so the kept frames still span the whole video.
    """
    n, dim = embeddings.shape
    if n > length:
        embeddings = embeddings[np.linspace(0, n, length, endpoint=False).astype(np.int64)]
        n = length
    out = np.zeros((length, dim), dtype=embeddings.dtype)
    out[:n] = embeddings
    mask = np.zeros(length, dtype=bool)
    mask[:n] = True
    return out, mask


class EmbeddingDataset(torch.utils.data.IterableDataset):
    """A torch ``IterableDataset`` yielding fixed-length tensors.

    Each item is a dict that torch's default collate batches: ``embeddings`` (length, dim)
    float32, ``mask`` (length,) bool, ``timestamps`` (length,) float32 seconds, ``key`` and
    ``caption``. Failed rows are skipped; :func:`iter_samples` gives the full metadata.
    With several DataLoader workers, shards are divided between them.
    """

    def __init__(self, dataset: str, length: int = 32) -> None:
        super().__init__()
        self.dataset, self.length = dataset, length

    def __iter__(self):
        urls = shard_urls(self.dataset)
        info = torch.utils.data.get_worker_info()
        if info is not None:
            urls = urls[info.id :: info.num_workers]
        for url in urls:
            for key, embeddings, meta in shard_samples(url, include_failed=False):
                stamps = np.asarray(meta["timestamps"], dtype=np.float32)[:, None]
                padded, mask = pad_or_truncate(embeddings, self.length)
                times, _ = pad_or_truncate(stamps, self.length)
                yield {
                    "key": key,
                    "embeddings": torch.from_numpy(padded.astype(np.float32)),
                    "mask": torch.from_numpy(mask),
                    "timestamps": torch.from_numpy(times[:, 0]),
                    "caption": meta.get("caption") or "",
                }


def shard_samples(url: str, include_failed: bool):
    """One committed shard's samples as ``(key, embeddings, metadata)``, in order: a tar, or
    a folder of ``KEY.ext`` files (``--output-format files``)."""
    if not url.endswith(".tar"):  # --output-format files: a folder of KEY.ext files
        yield from _iter_folder(url, include_failed)
        return
    with fsspec.open(url, "rb") as f, tarfile.open(fileobj=f, mode="r|") as tar:
        key, parts = None, {}
        for member in tar:
            if not member.isfile():
                continue
            name, _, ext = member.name.partition(".")
            if key is not None and name != key:
                yield from _sample(key, parts, include_failed)
                parts = {}
            key = name
            parts[ext] = tar.extractfile(member).read()
        if key is not None:
            yield from _sample(key, parts, include_failed)


def _iter_folder(url: str, include_failed: bool):
    fs, path = fsspec.core.url_to_fs(url)
    groups: dict[str, dict] = {}
    for name in sorted(fs.ls(path, detail=False)):
        key, _, ext = name.rsplit("/", 1)[-1].partition(".")
        groups.setdefault(key, {})[ext] = name
    for key, files in groups.items():
        parts = {ext: fs.cat_file(p) for ext, p in files.items()}
        yield from _sample(key, parts, include_failed)
