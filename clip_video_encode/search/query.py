"""A query's embedding in a dataset's own space: the model and weights its ``run.json`` names
(``--pretrained`` overrides), a text by the text tower alone, an image file by the image
tower alone. Shared by search, its server and summaries."""

from __future__ import annotations

import os

import numpy as np

from ..encoder import Encoder, EncoderLoadError, EncoderOptions, TextEncoder

IMAGE_SUFFIXES = (".jpg", ".jpeg", ".png", ".webp", ".bmp", ".gif")


def query_weights(run: dict, pretrained: str | None) -> str:
    """The weights queries are embedded with: ``--pretrained``, else those of ``run.json``;
    refused (cheaply, before anything is loaded) for unsaved random weights."""
    weights = pretrained or run.get("pretrained")
    if str(weights).lower() == "none":
        raise EncoderLoadError(
            "this dataset was encoded with random weights (--pretrained none) that were not"
            " saved, so no query can be embedded in its space; encode with a checkpoint file"
            " or a tag, or pass --pretrained with the file it was encoded from"
        )
    return weights


def query_encoder(run: dict, pretrained: str | None, device: str) -> TextEncoder:
    """The dataset's own model's text tower (``run.json``), under the weight rules; the image
    tower's weights are never read."""
    return TextEncoder(run["model"], query_weights(run, pretrained), device)


def embed_query(run: dict, pretrained: str | None, device: str, query: str,
                text: TextEncoder | None = None) -> tuple[np.ndarray, str]:  # fmt: skip
    """A text's or an image file's embedding, and which it was: a text query loads the text
    tower only (or uses ``text``), an image query the image tower only."""
    if os.path.isfile(query) and query.lower().endswith(IMAGE_SUFFIXES):
        from .images import load_image

        pixels = load_image(query)  # refused over 40 megapixels, before it is decoded
        options = EncoderOptions(run["model"], query_weights(run, pretrained), "fp32", device)
        return Encoder(options).encode(pixels[None])[0].astype(np.float32), "image"
    text = text or query_encoder(run, pretrained, device)
    return text.encode_text([query])[0], "text"
