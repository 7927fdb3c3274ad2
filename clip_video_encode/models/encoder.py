"""An open_clip image tower that takes uint8 frames in batches and returns float16 embeddings.

Which weights, and how they are loaded, is ``weights.py``'s business.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from .weights import (
    RANDOM_SEED,
    EncoderLoadError,
    WeightsMismatch,
    default_pretrained,
    image_tower_alone,
    load_weights,
)

__all__ = ["ENGINES", "Encoder", "EncoderFidelityError", "EncoderLoadError", "EncoderOptions",
           "PRECISIONS", "TextEncoder", "WeightsMismatch"]  # fmt: skip

PRECISIONS = ("auto", "fp32", "bf16", "fp16", "int8")
ENGINES = ("auto", "torch", "onnxruntime")


class EncoderFidelityError(Exception):
    """The engine's embeddings differ too much from torch fp32's: the run stops."""


@dataclass(frozen=True)
class EncoderOptions:
    model: str = "ViT-B-32"
    pretrained: str | None = None  # tag, local path or "none"; None: the model's default tag
    precision: str = "auto"
    device: str = "auto"
    batch_size: int | None = None  # None: resolve_batch_size's choice for the device
    cache_dir: str | None = None  # where open_clip looks for (and puts) downloaded weights
    text: bool = False  # keep the text tower (caption similarity); else only the image tower
    engine: str = "auto"  # torch, onnxruntime; auto: onnxruntime for int8, else torch
    min_cosine: float = 0.99  # an engine other than torch fp32 must agree with it this well
    # The weights' digest a dataset recorded (run.json's weights_sha256): other weights are
    # refused at load (WeightsMismatch). None: whatever the name gives.
    weights_sha256: str | None = None

    def resolved_pretrained(self) -> str:
        return self.pretrained or default_pretrained(self.model)


def resolve_device(device: str) -> str:
    """``auto``: a GPU when torch sees one. Any other device must be one torch can place a
    tensor on here and read back from, else a ValueError that says what to use: checked before
    a model loads or anything is written (a GPU asked for on a machine without one, a typo,
    ``meta``)."""
    import torch

    if device == "auto":
        return "cuda" if torch.cuda.is_available() else "cpu"
    try:
        # Read back, not only placed: 'meta' places tensors but holds no data (every row
        # came out failed_to_encode).
        torch.zeros(1, device=device).cpu()
    except (RuntimeError, AssertionError, ValueError, NotImplementedError) as exc:
        first = str(exc).strip().splitlines()[0] if str(exc).strip() else type(exc).__name__
        gpus = torch.cuda.device_count() if torch.cuda.is_available() else 0
        raise ValueError(
            f"--device {device} cannot be used here ({first}); this machine has {gpus} GPU(s)"
            " visible to torch: use --device cpu, auto, or cuda:N with N below that count"
        ) from None
    return device


def resolve_batch_size(batch_size: int | None, device: str, precision: str) -> int:
    """``None``: 256 on a GPU; on a CPU 128 in bf16 (matrix units gain up to batch 256), and in
    fp32 eight frames per thread (16 to 128): larger batches are no faster there and each
    doubling of the batch costs 50-200 MB of activations."""
    import torch

    if batch_size is not None:
        if batch_size < 1:
            raise ValueError(f"batch size must be >= 1, got {batch_size}")
        return batch_size
    if device.startswith("cuda"):
        return 256
    if precision == "bf16":
        return 128
    return min(128, max(16, 8 * torch.get_num_threads()))


def resolve_engine(engine: str, precision: str, device: str) -> str:
    """``auto``: ONNX Runtime when int8 is asked for by name (only it runs int8), else torch
    (a dataset begun with torch resumes with it; ``--engine onnxruntime`` asks for the faster
    fp32 on CPUs without bf16, see bench/encode.py)."""
    if engine not in ENGINES:
        raise ValueError(f"engine must be one of {', '.join(ENGINES)}, got {engine!r}")
    if engine == "auto":
        engine = "onnxruntime" if precision == "int8" else "torch"
    if engine == "torch" and precision == "int8":
        raise ValueError("int8 runs on ONNX Runtime: use --engine onnxruntime (or auto)")
    if engine == "onnxruntime" and device.startswith("cuda"):
        raise ValueError("--engine onnxruntime runs on the CPU here; use torch on a GPU")
    return engine


def resolve_precision(precision: str, device: str, engine: str = "torch") -> str:
    """``auto``: fp16 on CUDA; bf16 on a CPU with bf16 matrix units (AMX); fp32 otherwise. ONNX
    Runtime runs fp32 (``auto``) or int8.

    AVX-512 BF16 alone is not enough: on such a CPU without AMX, bf16 autocast ran at 0.54x of
    fp32's speed with a larger batch (bench/encode.py (b)); only the tile units make it pay."""

    if precision not in PRECISIONS:
        raise ValueError(f"precision must be one of {', '.join(PRECISIONS)}, got {precision!r}")
    if engine == "onnxruntime":
        if precision not in ("auto", "fp32", "int8"):
            raise ValueError(f"ONNX Runtime runs fp32 or int8 here, not {precision}")
        return "fp32" if precision == "auto" else precision
    if precision != "auto":
        return precision
    if device.startswith("cuda"):
        return "fp16"
    return "bf16" if cpu_has_amx() else "fp32"


def cpu_has_amx() -> bool:
    """Whether this CPU has AMX tiles that torch can use (bf16 matrix units)."""
    import torch

    probe = getattr(torch.cpu, "_is_amx_tile_supported", None)
    return bool(probe and probe() and torch.ops.mkldnn._is_mkldnn_bf16_supported())


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
        self.engine = resolve_engine(options.engine, options.precision, self.device)
        self.precision = resolve_precision(options.precision, self.device, self.engine)
        self.batch_size = resolve_batch_size(options.batch_size, self.device, self.precision)
        self.pretrained = options.resolved_pretrained()
        model, self.weights_sha256 = load_weights(options.model, self.pretrained, self.device,
                                                  options.cache_dir, options.text,
                                                  options.weights_sha256)  # fmt: skip
        cfg = open_clip.get_model_preprocess_cfg(model)
        plain = image_tower_alone(model)
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
        self._onnx = None
        self.fidelity: dict | None = None  # the first batch against torch fp32 (onnxruntime)
        if self.engine == "onnxruntime":
            self._onnx = self._onnx_tower(plain)

    def _onnx_tower(self, plain: bool):
        import torch

        try:
            from .onnx_engine import OnnxTower, exported_tower
        except ImportError as exc:
            raise EncoderLoadError(f"--engine onnxruntime needs onnxruntime and onnx ({exc}):"
                                   " pip install 'clip-video-datasets[onnx]'") from exc  # fmt: skip
        if not plain:
            raise EncoderLoadError(f"{self.options.model}'s image embedding is more than its"
                                   " visual tower: use --engine torch")  # fmt: skip
        try:
            path = exported_tower(self._encode_image, self.options.model, self.image_size,
                                  self.precision, self.options.cache_dir)  # fmt: skip
        except ImportError as exc:
            raise EncoderLoadError(f"exporting to ONNX needs the onnx package ({exc}): pip"
                                   " install 'clip-video-datasets[onnx]'") from exc  # fmt: skip
        return OnnxTower(path, torch.get_num_threads())

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
        return x.mul_(self._scale).sub_(self._shift)  # in place: a batch is 77 MB in float

    def encode(self, frames: np.ndarray) -> np.ndarray:
        """Embeddings of ``frames`` (any count; batched internally) as float16 numpy."""
        import torch

        out = np.empty((len(frames), self.embed_dim), dtype=np.float16)
        if self._onnx is not None:
            with torch.inference_mode():
                for lo in range(0, len(frames), self.batch_size):
                    x = self.preprocess(frames[lo : lo + self.batch_size])
                    y = self._onnx(x.cpu().numpy())
                    if self.fidelity is None:
                        self._check_fidelity(x, y)
                    out[lo : lo + len(y)] = y
            return out
        dtype = {"bf16": torch.bfloat16, "fp16": torch.float16}.get(self.precision)
        device_type = "cuda" if self.device.startswith("cuda") else "cpu"
        with torch.inference_mode():
            for lo in range(0, len(frames), self.batch_size):
                x = self.preprocess(frames[lo : lo + self.batch_size])
                with torch.autocast(device_type, dtype=dtype, enabled=dtype is not None):
                    y = self._encode_image(x)
                out[lo : lo + len(y)] = y.float().cpu().numpy()
        return out

    def _check_fidelity(self, x, y: np.ndarray) -> None:
        """The first batch through torch fp32 too: the lowest cosine between the two is kept
        (``fidelity``, recorded in ``run.json``) and must reach ``min_cosine``. The torch
        tower is freed once checked (unless the text tower needs the model)."""
        import sys

        reference = self._encode_image(x).float().cpu().numpy()
        cosine = (reference * y).sum(1) / (
            np.linalg.norm(reference, axis=1) * np.linalg.norm(y, axis=1) + 1e-12
        )
        self.fidelity = {"engine": self.engine, "precision": self.precision,
                         "reference": "torch fp32", "frames": len(y),
                         "min_cosine": round(float(cosine.min()), 6),
                         "mean_cosine": round(float(cosine.mean()), 6)}  # fmt: skip
        print(f"clip-video-encode: {self.engine} {self.precision} against torch fp32 on the"
              f" first {len(y)} frames: cosine min {cosine.min():.4f}, mean"
              f" {cosine.mean():.4f}", file=sys.stderr)  # fmt: skip
        if cosine.min() < self.options.min_cosine:
            raise EncoderFidelityError(
                f"{self.engine} {self.precision} embeddings differ from torch fp32's (lowest"
                f" cosine {cosine.min():.4f} on the first {len(y)} frames, below"
                f" {self.options.min_cosine}): the run stops before writing them. Use"
                " --precision fp32 or --engine torch, or lower --min-cosine if this is known"
                " and acceptable for these weights."
            )
        if self.model is None:
            self._encode_image = None  # the torch copy of the tower is not needed any more

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
        return cosine_to(embeddings, self.encode_text([text])[0])

    def describe(self) -> dict:
        """What ``run.json`` records about the encoder. ``weights_sha256`` names the weights
        themselves (a path or a tag may give other weights another day), ``weights_seed``
        how random weights (``none``) were drawn."""
        seed = {"weights_seed": RANDOM_SEED} if self.pretrained.lower() == "none" else {}
        return {
            "model": self.options.model,
            "pretrained": self.pretrained,
            "weights_sha256": self.weights_sha256,
            **seed,
            "precision": self.precision,
            "batch_size": self.batch_size,
            "engine": self.engine,
            "device": self.device,
            "embed_dim": self.embed_dim,
            "image_size": self.image_size,
            "normalized": False,
        }


def cosine_to(embeddings: np.ndarray, vector: np.ndarray) -> np.ndarray:
    """Cosine similarity of each row of ``embeddings`` to ``vector``."""
    e = embeddings.astype(np.float32)
    t = np.asarray(vector, np.float32)
    return (e @ t) / (np.linalg.norm(e, axis=1) * np.linalg.norm(t) + 1e-12)


class TextEncoder:
    """The text tower of a model alone, for queries. The checkpoint is memory-mapped and the
    image tower is dropped before anything runs, so its weights are never read: a text query
    costs the text tower only (``Encoder(text=True)`` runs the image tower once to learn its
    output size, which pages all of it in)."""

    def __init__(self, model: str, pretrained: str, device: str = "auto",
                 cache_dir: str | None = None,
                 expect_sha256: str | None = None) -> None:  # fmt: skip
        """``expect_sha256``: the dataset's ``weights_sha256``; a checkpoint with other
        weights raises :class:`WeightsMismatch` (queries would land in another space)."""
        import open_clip
        import torch

        self.device = resolve_device(device)
        clip, self.weights_sha256 = load_weights(model, pretrained, "cpu", cache_dir, True,
                                                 expect_sha256)  # fmt: skip
        if hasattr(clip, "visual"):
            clip.visual = torch.nn.Identity()  # unread, and gone
        self.model = clip.to(self.device).eval()
        self._tokenizer = open_clip.get_tokenizer(model)
        self._short = _causal_argmax_text(self.model)  # checked on the first call

    def encode_text(self, texts: list[str]) -> np.ndarray:
        """Text embeddings (float32). A causal text tower pooled at its end token gives the
        same output when the padding after the longest text is not run, so it is not:
        a short query costs a few positions instead of the full context (77 for CLIP)."""
        import torch

        with torch.inference_mode():
            tokens = self._tokenizer(texts).to(self.device)
            if self._short is None:
                return self.model.encode_text(tokens).float().cpu().numpy()
            out = self._encode_short(tokens)
            if self._short == "unchecked":  # once: the short path must equal the full one
                full = self.model.encode_text(tokens).float()
                ok = torch.allclose(out, full, atol=1e-4, rtol=1e-3)
                self._short = True if ok else None
                out = out if ok else full
            return out.float().cpu().numpy()

    def _encode_short(self, tokens):
        import torch
        from open_clip.transformer import text_global_pool

        m = self.model
        length = int((tokens != 0).sum(1).max())
        tokens = tokens[:, :length]
        cast = m.transformer.get_cast_dtype()
        x = m.token_embedding(tokens).to(cast) + m.positional_embedding[:length].to(cast)
        x = m.transformer(x, attn_mask=m.attn_mask[:length, :length])
        x = m.ln_final(x)
        x = text_global_pool(x, tokens, m.text_pool_type,
                             eos_token_id=getattr(m, "text_eos_id", None))  # fmt: skip
        if isinstance(m.text_projection, torch.nn.Linear):
            x = m.text_projection(x)
        elif m.text_projection is not None:
            x = x @ m.text_projection
        return x.float()


def _causal_argmax_text(model) -> str | None:
    """ "unchecked" for an open_clip CLIP whose text tower is causal and pooled at the end
    token (argmax / eos): its padding can be skipped. None for any other model."""
    import open_clip

    if type(model) is not open_clip.model.CLIP or getattr(model, "attn_mask", None) is None:
        return None
    if getattr(model, "text_pool_type", None) not in ("argmax", "eos"):
        return None
    return "unchecked"
