"""A search session: a dataset's index and its model kept between queries.

``clip-video-search`` run once per query pays for importing torch and loading the model
every time; a session pays once. The text tower is loaded when the session starts (text
queries are the common case), the image tower only when the first image query arrives, and
sessions over datasets encoded with the same model and weights share the towers. Every tower
is checked against the digest of the weights the dataset was encoded with (``run.json``'s
``weights_sha256``): a session never answers in another model's space.
"""

from __future__ import annotations

import threading
from dataclasses import dataclass

import numpy as np

from ..models.encoder import Encoder, TextEncoder
from .ann import build_ann, rank_moments_ann
from .index import SearchIndex, build_index, frame_scores, read_run
from .moments import Moment, MomentOptions, rank_moments
from .query import image_tower, query_weights, text_tower


@dataclass(frozen=True)
class Hit:
    """A moment and what a page needs to show it."""

    moment: Moment
    caption: str | None
    location: str | None
    curve_times: list[float]
    curve_scores: list[float]

    def as_dict(self) -> dict:
        m = self.moment
        return {"key": m.key, "id": m.id, "start_s": m.start_s, "end_s": m.end_s,
                "score": m.score, "peak_s": m.peak_s, "caption": self.caption,
                "location": self.location, "video": m.video,
                "curve": {"t": self.curve_times, "s": self.curve_scores}}  # fmt: skip


class Towers:
    """The text and image towers of each model and weights, loaded once, shared.

    A tower is kept under the model, the weights' name and the digest the dataset expects
    (``run.json``'s ``weights_sha256``), never under the name alone: two datasets encoded
    from one path whose file was replaced in between name the same weights and hold two
    spaces, and each gets a tower of its own (checked at load by :mod:`.query`). Datasets of
    the same weights under other names share one tower, by the digest of what was loaded."""

    def __init__(self, device: str = "auto") -> None:
        self.device = device
        self._text: dict[tuple, TextEncoder] = {}
        self._image: dict[tuple, Encoder] = {}
        self._loaded: dict[tuple, TextEncoder | Encoder] = {}  # (tower, model, digest)
        self._lock = threading.Lock()

    def text(self, run: dict, weights: str) -> TextEncoder:
        """The text tower of ``run``'s model with ``weights`` (refused unless they are the
        dataset's: :class:`~clip_video_encode.models.weights.WeightsMismatch`)."""
        return self._get(self._text, "text", run, weights, text_tower)

    def image(self, run: dict, weights: str) -> Encoder:
        return self._get(self._image, "image", run, weights, image_tower)

    def _get(self, cache: dict, kind: str, run: dict, weights: str, load):
        key = (run["model"], weights, run.get("weights_sha256") or None)
        with self._lock:
            if key not in cache:
                tower = load(run, weights, self.device)
                same = (kind, run["model"], tower.weights_sha256)
                cache[key] = self._loaded.setdefault(same, tower)
            return cache[key]


class SearchSession:
    """One dataset, searchable again and again: ``session.search("a dog")``."""

    def __init__(self, dataset: str, pretrained: str | None = None, towers: Towers | None = None,
                 device: str = "auto", nprobe: int = 16,
                 memory_budget: int = 4 << 30) -> None:  # fmt: skip
        """``memory_budget``: bytes the frames may take in memory as float32 (a query is
        then one matrix-vector product); a larger index is scored from the file in slices."""
        self.dataset = dataset
        self.run = read_run(dataset)  # first: a folder that is not a dataset fails at once
        self.weights = query_weights(self.run, pretrained)
        self.model = self.run["model"]
        self.index = SearchIndex(build_index(dataset))
        self.index.keep_in_memory(memory_budget)
        self.towers = towers or Towers(device)
        self.towers.text(self.run, self.weights)  # loaded now: the first query is quick
        self.nprobe = nprobe
        self._ann = None
        self._lock = threading.Lock()

    def embed_text(self, text: str) -> np.ndarray:
        return self.towers.text(self.run, self.weights).encode_text([text])[0]

    def embed_image(self, pixels: np.ndarray) -> np.ndarray:
        """An RGB uint8 picture ``(H, W, 3)``, resized and cropped as the frames were."""
        encoder = self.towers.image(self.run, self.weights)
        return encoder.encode(pixels[None])[0].astype(np.float32)

    def search(self, query: np.ndarray, top: int = 10, options: MomentOptions | None = None,
               contrast: np.ndarray | None = None, ann: bool = False,
               curve_points: int = 200) -> list[Hit]:  # fmt: skip
        """The ``top`` moments for a query embedding, each with its video's similarity curve
        (at most ``curve_points`` points)."""
        options = options or MomentOptions()
        if ann:
            if contrast is not None:
                raise ValueError("contrast needs the exact search")
            with self._lock:
                if self._ann is None:
                    self._ann = build_ann(self.index, self.nprobe)
            moments = rank_moments_ann(self.index, self._ann, query, top, options)
            scores = None
        else:
            scores = frame_scores(self.index, query, contrast)
            moments = rank_moments(self.index, scores, top, options)
        return [self._hit(m, query, scores, curve_points) for m in moments]

    def _hit(self, m: Moment, query, scores, points: int) -> Hit:
        index = self.index
        lo, hi = index.offsets[m.video], index.offsets[m.video + 1]
        if scores is None:  # ANN: this video's curve alone, exactly
            q = np.asarray(query, np.float32).ravel()
            curve = index.embeddings[lo:hi].astype(np.float32) @ (q / (np.linalg.norm(q) + 1e-12))
        else:
            curve = scores[lo:hi]
        times = index.frame_time[lo:hi]
        step = max(1, -(-len(times) // points))
        video = index.videos[m.video]
        return Hit(m, video.get("caption"), video.get("location"),
                   [round(float(t), 3) for t in times[::step]],
                   [round(float(s), 5) for s in curve[::step]])  # fmt: skip
