"""A query's embedding in a dataset's own space: the model and weights its ``run.json`` names
(``--pretrained`` overrides), a text by the text tower alone, an image file by the image
tower alone. Shared by search, its server, summaries and video models.

The weights are checked, not trusted by name: a path or a tag may give other weights than
those the dataset was encoded with (a checkpoint replaced at the same path, a ``--pretrained``
given by mistake), and a query embedded by them would be compared with frames of another
space, giving confident nonsense. So every tower loaded here is compared with the digest the
dataset recorded (``run.json``'s ``weights_sha256``) and refused, naming both digests, when
it differs. Random weights (``--pretrained none``) are drawn from a fixed seed that
``run.json`` records (``weights_seed``): such a dataset is queried with the same random
weights, drawn again and checked by their digest; one without the seed is refused.
"""

from __future__ import annotations

import os

import numpy as np

from ..models.encoder import Encoder, EncoderLoadError, EncoderOptions, TextEncoder
from ..models.weights import RANDOM_SEED, WeightsMismatch

IMAGE_SUFFIXES = (".jpg", ".jpeg", ".png", ".webp", ".bmp", ".gif")


def is_random(weights: str | None) -> bool:
    return str(weights).lower() == "none"


def query_weights(run: dict, pretrained: str | None) -> str:
    """The weights queries are embedded with: ``--pretrained``, else those of ``run.json``.
    Random weights (``none``) are refused (cheaply, before anything is loaded) unless the
    dataset recorded how its own were drawn (``weights_seed``) and what they were
    (``weights_sha256``), and this version draws them from that seed."""
    weights = pretrained or run.get("pretrained")
    if not is_random(weights):
        return weights
    seed, digest = run.get("weights_seed"), run.get("weights_sha256")
    if not is_random(run.get("pretrained")):
        if digest:  # a dataset of other weights: the digests will tell
            return weights
        raise EncoderLoadError(
            "--pretrained none gives random weights, and this dataset's run.json records no"
            " weights_sha256 to check them against; pass --pretrained with the checkpoint file"
            " or tag the dataset was encoded with"
        )
    if seed is None or not digest:
        raise EncoderLoadError(
            "this dataset was encoded with random weights (--pretrained none) whose seed was"
            " not recorded (its run.json has no weights_seed and weights_sha256: written"
            " before they were), so no query can be embedded in its space; encode it again"
            " (none is now drawn from a recorded seed), or with a checkpoint file or a tag"
        )
    if seed != RANDOM_SEED:
        raise EncoderLoadError(
            f"this dataset's random weights (--pretrained none) were drawn from seed {seed},"
            f" but this version draws none from seed {RANDOM_SEED}; query it with the"
            " clip-video-datasets version it was encoded with (run.json's versions), or"
            " encode it again"
        )
    return weights


def text_tower(run: dict, weights: str, device: str) -> TextEncoder:
    """The text tower of ``run``'s model with ``weights``, refused (:class:`WeightsMismatch`)
    unless they are the dataset's (``weights_sha256``, where ``run.json`` records it)."""
    return _checked(run, weights, lambda expect: TextEncoder(
        run["model"], weights, device, expect_sha256=expect))  # fmt: skip


def image_tower(run: dict, weights: str, device: str) -> Encoder:
    """The image tower (fp32) of ``run``'s model with ``weights``, checked as
    :func:`text_tower` is."""
    return _checked(run, weights, lambda expect: Encoder(EncoderOptions(
        run["model"], weights, "fp32", device, text=False, weights_sha256=expect)))  # fmt: skip


def _checked(run: dict, weights: str, load):
    """``load(expected digest)``: the loader refuses other weights itself. A dataset of
    random weights is compared here instead, so that its refusal says what happened (the
    seed drew other weights with other versions; or ``--pretrained`` named a file where the
    dataset has none) rather than asking for a checkpoint file that never existed."""
    expected = run.get("weights_sha256") or None
    if not is_random(run.get("pretrained")):
        return load(expected)
    tower = load(None)
    actual = tower.weights_sha256
    if expected is None or actual == expected:
        return tower
    seed = run.get("weights_seed")
    ours = f"random weights (--pretrained none, seed {seed}) of sha256 {expected}"
    if not is_random(weights):
        raise WeightsMismatch(
            f"this dataset was encoded with {ours}, but {run['model']} {weights} has sha256"
            f" {actual}: leave out --pretrained to query it with its own random weights"
        )
    raise WeightsMismatch(
        f"this dataset was encoded with {ours}, but the same seed draws sha256 {actual} here:"
        f" other torch or open_clip versions draw other random weights (encoded with"
        f" {_versions(run.get('versions') or {})}; here {_versions(_installed())}); query it"
        " with the versions it was encoded with, or encode it again"
    )


def _versions(versions: dict) -> str:
    names = [f"{k} {versions[k]}" for k in ("torch", "open_clip_torch") if k in versions]
    return ", ".join(names) or "versions not recorded"


def _installed() -> dict:
    from video2numpy.versions import package_versions

    return package_versions("torch", "open_clip_torch")


def query_encoder(run: dict, pretrained: str | None, device: str) -> TextEncoder:
    """The dataset's own model's text tower (``run.json``), under the weight rules and
    checked against the dataset's digest; the image tower's weights are never read."""
    return text_tower(run, query_weights(run, pretrained), device)


def embed_query(run: dict, pretrained: str | None, device: str, query: str,
                text: TextEncoder | None = None) -> tuple[np.ndarray, str]:  # fmt: skip
    """A text's or an image file's embedding, and which it was: a text query loads the text
    tower only (or uses ``text``), an image query the image tower only; both checked against
    the dataset's digest."""
    if os.path.isfile(query) and query.lower().endswith(IMAGE_SUFFIXES):
        from .images import load_image

        pixels = load_image(query)  # refused over 40 megapixels, before it is decoded
        encoder = image_tower(run, query_weights(run, pretrained), device)
        return encoder.encode(pixels[None])[0].astype(np.float32), "image"
    text = text or query_encoder(run, pretrained, device)
    return text.encode_text([query])[0], "text"
