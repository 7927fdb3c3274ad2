"""An open_clip image tower that takes uint8 frames in batches and returns float16 embeddings.

Weights are explicit: an open_clip pretrained tag, a local checkpoint path, or ``none`` for
random weights, which a user must ask for by name. A tag that cannot be downloaded is an error
that names the offline options; nothing ever falls back to random weights silently.
"""

from __future__ import annotations

import os
from dataclasses import dataclass

import numpy as np

PRECISIONS = ("auto", "fp32", "bf16", "fp16")
# The weights each model gets when --pretrained is not given (the best-known open release).
DEFAULT_PRETRAINED = {
    "ViT-B-32": "laion2b_s34b_b79k",
    "ViT-B-16": "laion2b_s34b_b88k",
    "ViT-L-14": "laion2b_s32b_b82k",
    "ViT-H-14": "laion2b_s32b_b79k",
}


class EncoderLoadError(Exception):
    """The model or its weights could not be loaded; the message says what to do."""


@dataclass(frozen=True)
class EncoderOptions:
    model: str = "ViT-B-32"
    pretrained: str | None = None  # tag, local path or "none"; None: the model's default tag
    precision: str = "auto"
    device: str = "auto"
    batch_size: int = 128
    cache_dir: str | None = None  # where open_clip looks for (and puts) downloaded weights
    text: bool = False  # keep the text tower (caption similarity); else only the image tower

    def resolved_pretrained(self) -> str:
        if self.pretrained:
            return self.pretrained
        import open_clip

        tag = DEFAULT_PRETRAINED.get(self.model)
        tags = open_clip.list_pretrained_tags_by_model(self.model)
        if tag is None and tags:
            tag = tags[0]
        if tag is None:
            raise EncoderLoadError(
                f"{self.model} has no open_clip pretrained tag: pass --pretrained with a local"
                " checkpoint path, or --pretrained none for random weights"
            )
        return tag


def resolve_device(device: str) -> str:
    import torch

    if device == "auto":
        return "cuda" if torch.cuda.is_available() else "cpu"
    return device


def resolve_precision(precision: str, device: str) -> str:
    """``auto``: fp16 on CUDA; bf16 on a CPU with native bf16 support; fp32 otherwise."""
    import torch

    if precision not in PRECISIONS:
        raise ValueError(f"precision must be one of {', '.join(PRECISIONS)}, got {precision!r}")
    if precision != "auto":
        return precision
    if device.startswith("cuda"):
        return "fp16"
    return "bf16" if torch.ops.mkldnn._is_mkldnn_bf16_supported() else "fp32"


def load_model(model_name: str, pretrained: str, device: str, cache_dir: str | None = None):
    """The open_clip model, in eval mode, following the weight rules above."""
    import open_clip

    if model_name not in open_clip.list_models():
        near = [m for m in open_clip.list_models() if model_name.lower()[:5] in m.lower()][:8]
        raise EncoderLoadError(
            f"unknown open_clip model {model_name!r}"
            + (f"; similar: {', '.join(near)}" if near else "; see open_clip.list_models()")
        )
    if pretrained.lower() == "none":
        weights = None
    elif os.path.isfile(pretrained):
        weights = pretrained
    elif pretrained.startswith("hf-hub:") or pretrained in open_clip.list_pretrained_tags_by_model(
        model_name
    ):
        weights = pretrained
    else:
        tags = ", ".join(open_clip.list_pretrained_tags_by_model(model_name)) or "none"
        raise EncoderLoadError(
            f"--pretrained {pretrained!r} is neither a file nor an open_clip tag of"
            f" {model_name} (tags: {tags}); use 'none' for random weights"
        )
    try:
        model = open_clip.create_model(
            model_name, pretrained=weights, device=device, cache_dir=cache_dir
        )
    except Exception as exc:
        if weights is None or os.path.isfile(weights):
            raise EncoderLoadError(f"cannot load {model_name} from {weights}: {exc}") from exc
        raise EncoderLoadError(
            f"cannot get the pretrained weights {pretrained!r} for {model_name}: {exc}.\n"
            "Offline, either pass a local checkpoint file (--pretrained /path/to/"
            "open_clip_pytorch_model.bin), point --cache-dir at a folder that already holds"
            " the downloaded weights (or set HF_HUB_CACHE), or ask for random weights with"
            " --pretrained none. On a machine without network, HF_HUB_OFFLINE=1 makes this"
            " fail at once instead of after retries."
        ) from exc
    return model.eval()


class Encoder:
    """Encodes uint8 RGB frames ``(n, H, W, 3)`` into float16 ``(n, embed_dim)`` embeddings.

    Frames are normalised with the model's own mean, std and size; frames of another size are
    resized (short side, bicubic, antialiased) and centre cropped as open_clip's own
    preprocessing does. Outputs are the image tower's, not normalised.
    """

    def __init__(self, options: EncoderOptions) -> None:
        import open_clip
        import torch

        self.options = options
        self.device = resolve_device(options.device)
        self.precision = resolve_precision(options.precision, self.device)
        self.pretrained = options.resolved_pretrained()
        model = load_model(options.model, self.pretrained, self.device, options.cache_dir)
        cfg = open_clip.get_model_preprocess_cfg(model)
        plain = type(model).encode_image in (
            open_clip.model.CLIP.encode_image,
            open_clip.model.CustomTextCLIP.encode_image,
        )
        # Where encode_image is the image tower alone, keep just that tower unless text is
        # needed: the text tower is a third of ViT-B-32's memory and never used here.
        self._encode_image = model.visual if plain else model.encode_image
        self.model = model if (options.text or not plain) else None
        del model
        size = cfg.get("size", 224)
        self.image_size = size if isinstance(size, int) else int(size[0])
        mean = torch.tensor(cfg.get("mean", open_clip.OPENAI_DATASET_MEAN), dtype=torch.float32)
        std = torch.tensor(cfg.get("std", open_clip.OPENAI_DATASET_STD), dtype=torch.float32)
        self._scale = (1.0 / (255.0 * std)).view(1, 3, 1, 1).to(self.device)
        self._shift = (mean / std).view(1, 3, 1, 1).to(self.device)
        with torch.inference_mode():
            probe = torch.zeros(1, 3, self.image_size, self.image_size, device=self.device)
            self.embed_dim = int(self._encode_image(probe).shape[-1])

    def preprocess(self, frames: np.ndarray):
        """uint8 NHWC numpy -> normalised float32 NCHW tensor on the device."""
        import torch
        import torch.nn.functional as F

        x = torch.from_numpy(np.ascontiguousarray(frames)).to(self.device, non_blocking=True)
        x = x.permute(0, 3, 1, 2).float()
        h, w = x.shape[-2:]
        if (h, w) != (self.image_size, self.image_size):
            ratio = self.image_size / min(h, w)
            new = (max(self.image_size, round(h * ratio)), max(self.image_size, round(w * ratio)))
            x = F.interpolate(x, size=new, mode="bicubic", antialias=True, align_corners=False)
            x = x.clamp_(0, 255)
            top = int(round((new[0] - self.image_size) / 2.0))
            left = int(round((new[1] - self.image_size) / 2.0))
            x = x[..., top : top + self.image_size, left : left + self.image_size]
        return x * self._scale - self._shift

    def encode(self, frames: np.ndarray) -> np.ndarray:
        """Embeddings of ``frames`` (any count; batched internally) as float16 numpy."""
        import torch

        out = np.empty((len(frames), self.embed_dim), dtype=np.float16)
        dtype = {"bf16": torch.bfloat16, "fp16": torch.float16}.get(self.precision)
        device_type = "cuda" if self.device.startswith("cuda") else "cpu"
        with torch.inference_mode():
            for lo in range(0, len(frames), self.options.batch_size):
                x = self.preprocess(frames[lo : lo + self.options.batch_size])
                with torch.autocast(device_type, dtype=dtype, enabled=dtype is not None):
                    y = self._encode_image(x)
                out[lo : lo + len(y)] = y.float().cpu().numpy()
        return out

    def encode_text(self, texts: list[str]) -> np.ndarray:
        """Text-tower embeddings (float32) of the same model, for caption similarity."""
        import open_clip
        import torch

        if self.model is None:
            raise ValueError("this encoder was built without its text tower (text=False)")
        if not hasattr(self, "_tokenizer"):
            self._tokenizer = open_clip.get_tokenizer(self.options.model)
        with torch.inference_mode():
            tokens = self._tokenizer(texts).to(self.device)
            return self.model.encode_text(tokens).float().cpu().numpy()

    def similarity(self, embeddings: np.ndarray, text: str) -> np.ndarray:
        """Cosine similarity of each frame embedding to ``text``."""
        t = self.encode_text([text])[0]
        e = embeddings.astype(np.float32)
        return (e @ t) / (np.linalg.norm(e, axis=1) * np.linalg.norm(t) + 1e-12)

    def describe(self) -> dict:
        """What ``run.json`` records about the encoder."""
        return {
            "model": self.options.model,
            "pretrained": self.pretrained,
            "precision": self.precision,
            "device": self.device,
            "embed_dim": self.embed_dim,
            "image_size": self.image_size,
            "normalized": False,
        }
