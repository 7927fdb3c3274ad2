"""The captioner: a Hugging Face ``VisionEncoderDecoderModel`` with its image processor and
tokenizer, loaded from what the user names and used as SpaceTimeGPT's model card does.

The default is SpaceTimeGPT (``Neleac/timesformer-gpt2-video-captioning``), whose card loads
the image processor of ``MCG-NJU/videomae-base`` and the tokenizer of ``gpt2`` beside it (the
model's repository ships neither); any other model uses the processor and tokenizer it ships,
and either can be named instead. A name is a Hub id or a local folder, resolved by
``from_pretrained`` in both cases: the tests load a tiny random captioner saved in a folder
through this very code, and a Hub cache laid out by hand under the default's name.

Weights come only from what is named. ``from_pretrained`` fills tensors missing from a
checkpoint with random values and logs a warning; here that is an error
(:class:`CaptionModelError`), so a truncated download or another architecture's checkpoint
never captions with partly random weights. Each load reports digests of what it gave (weights,
processor settings, tokenizer), which a run binds in its ``run.json``.
"""

from __future__ import annotations

import contextlib
import hashlib
import json
import os
from dataclasses import dataclass

import numpy as np

from ..models.weights import tensors_sha256

DEFAULT_MODEL = "Neleac/timesformer-gpt2-video-captioning"
# What the model card loads beside a model whose repository ships no processor or tokenizer.
CARD_COMPANIONS = {DEFAULT_MODEL: ("MCG-NJU/videomae-base", "gpt2")}
PRECISIONS = ("auto", "fp32", "fp16", "bf16")


class CaptionModelError(Exception):
    """The captioner could not be loaded as asked; the message says what to do."""


@dataclass(frozen=True)
class CaptionerOptions:
    model: str = DEFAULT_MODEL
    processor: str | None = None  # None: the card's companion, else the model's own
    tokenizer: str | None = None
    revision: str | None = None  # a Hub branch, tag or commit of the model
    device: str = "auto"
    precision: str = "auto"  # auto: fp16 on a GPU, fp32 on a CPU
    num_frames: int | None = None  # None: model.config.encoder.num_frames
    num_beams: int = 8
    min_length: int = 10
    max_length: int = 20
    cache_dir: str | None = None

    def __post_init__(self) -> None:
        if self.precision not in PRECISIONS:
            raise ValueError(f"--precision must be one of {', '.join(PRECISIONS)}")
        if self.num_beams < 1:
            raise ValueError(f"--num-beams must be >= 1, got {self.num_beams}")
        if self.min_length < 0 or self.max_length < 1 or self.min_length > self.max_length:
            raise ValueError(
                f"--min-length ({self.min_length}) must be >= 0 and at most --max-length"
                f" ({self.max_length}), which must be >= 1"
            )
        if self.num_frames is not None and self.num_frames < 1:
            raise ValueError(f"--num-frames must be >= 1, got {self.num_frames}")

    def companions(self) -> tuple[str, str]:
        """(processor, tokenizer) names: as given, else the card's, else the model's own."""
        processor, tokenizer = CARD_COMPANIONS.get(self.model, (self.model, self.model))
        return self.processor or processor, self.tokenizer or tokenizer


def require(*modules: str) -> None:
    """The ``caption`` extra's packages, or an error that says how to install them."""
    import importlib

    missing = []
    for module in modules:
        try:
            importlib.import_module(module)
        except ImportError:
            missing.append(module)
    if missing:
        raise CaptionModelError(
            f"{' and '.join(missing)} not installed: captioning and its metrics are an extra,"
            " pip install 'clip-video-datasets[caption]'"
        )


def resolve_precision(precision: str, device: str) -> str:
    if precision != "auto":
        return precision
    return "fp16" if device.startswith("cuda") else "fp32"


class Captioner:
    """Loaded once per run; :meth:`pixels` turns a clip's frames into the model's input and
    :meth:`generate` captions a batch of them."""

    def __init__(self, options: CaptionerOptions) -> None:
        import torch

        require("transformers", "tokenizers")

        from ..models.encoder import resolve_device

        self.options = options
        self.device = resolve_device(options.device)  # a device torch cannot use: ValueError
        self.precision = resolve_precision(options.precision, self.device)
        self.dtype = {"fp32": torch.float32, "fp16": torch.float16, "bf16": torch.bfloat16}[
            self.precision
        ]
        processor_name, tokenizer_name = options.companions()
        self.processor_name, self.tokenizer_name = processor_name, tokenizer_name
        self.model, self.revision = _load_model(options)
        self.processor = _load_part("image processor", processor_name, options)
        self.tokenizer = _load_part("tokenizer", tokenizer_name, options)
        self.num_frames = options.num_frames or _config_frames(self.model, options.model)
        self._check_sizes()
        self.weights_sha256 = tensors_sha256(self.model)
        self.model.to(self.device, self.dtype).eval()

    def describe(self) -> dict:
        """What decides the captions, for ``run.json`` and the table's columns."""
        return {
            "model": self.options.model,
            "revision": self.revision,
            "weights_sha256": self.weights_sha256,
            "processor": self.processor_name,
            "processor_sha256": _sha256_text(self.processor.to_json_string()),
            "tokenizer": self.tokenizer_name,
            "tokenizer_sha256": _tokenizer_sha256(self.tokenizer),
            "num_frames": self.num_frames,
            "num_beams": self.options.num_beams,
            "min_length": self.options.min_length,
            "max_length": self.options.max_length,
            "precision": self.precision,
        }

    def pixels(self, frames: list[np.ndarray]) -> np.ndarray:
        """One clip's frames (RGB uint8, any size) as the model's input, (T, C, H, W) float32:
        the image processor called on the list of frames, as the card does."""
        out = self.processor(list(frames), return_tensors="np")["pixel_values"]
        return np.asarray(out[0], dtype=np.float32)

    def generate(self, pixels: np.ndarray) -> list[str]:
        """Captions of a batch of clips, (B, T, C, H, W), with the run's beams and lengths."""
        import torch

        batch = torch.from_numpy(np.ascontiguousarray(pixels)).to(self.device, self.dtype)
        with torch.inference_mode(), _quiet_transformers():
            tokens = self.model.generate(
                batch,
                num_beams=self.options.num_beams,
                min_length=self.options.min_length,
                max_length=self.options.max_length,
            )
        texts = self.tokenizer.batch_decode(tokens, skip_special_tokens=True)
        return [" ".join(t.split()) for t in texts]

    def _check_sizes(self) -> None:
        """A processor whose crop does not fit the encoder fails here, not at the first batch."""
        encoder = getattr(self.model.config, "encoder", None)
        want = getattr(encoder, "image_size", None)
        crop = getattr(self.processor, "crop_size", None)
        height = crop.get("height") if hasattr(crop, "get") else None
        if isinstance(want, int) and isinstance(height, int) and height != want:
            raise CaptionModelError(
                f"the image processor {self.processor_name} crops {height} px, but the model's"
                f" encoder takes {want} px: name a matching processor with --processor"
            )


def _load_model(options: CaptionerOptions):
    from transformers import VisionEncoderDecoderModel

    try:
        with _quiet_transformers():
            model, info = VisionEncoderDecoderModel.from_pretrained(
                options.model,
                revision=options.revision,
                cache_dir=options.cache_dir,
                output_loading_info=True,
            )
    except (OSError, ValueError, KeyError) as exc:
        raise CaptionModelError(_load_message("model", options.model, exc)) from exc
    missing = list(info.get("missing_keys") or []) + [
        str(m[0]) if isinstance(m, tuple) else str(m) for m in info.get("mismatched_keys") or []
    ]
    if missing:
        raise CaptionModelError(
            f"{options.model} does not hold all of the model's weights ({len(missing)} missing"
            f" or of another shape, e.g. {missing[0]}); they would be random. Give the complete"
            " checkpoint (a download cut short? another architecture?)"
        )
    return model, _revision(options)


def _load_part(what: str, name: str, options: CaptionerOptions):
    from transformers import AutoImageProcessor, AutoTokenizer

    loader = AutoImageProcessor if what == "image processor" else AutoTokenizer
    # The model's revision pins the model's own files; a companion named apart is its own repo.
    revision = options.revision if name == options.model else None
    try:
        with _quiet_transformers():
            return loader.from_pretrained(name, revision=revision, cache_dir=options.cache_dir)
    except (OSError, ValueError, KeyError) as exc:
        raise CaptionModelError(_load_message(what, name, exc)) from exc


def _load_message(what: str, name: str, exc: Exception) -> str:
    flag = {"model": "--model", "image processor": "--processor", "tokenizer": "--tokenizer"}
    local = os.path.isdir(name)
    where = (
        f"the folder {name} has no usable {what}"
        if local
        else f"cannot get the {what} {name!r} from the Hugging Face Hub or its cache"
    )
    hint = (
        ""
        if local
        else "; without network access, download it where there is one"
        f" (huggingface-cli download {name}) and copy the cache, or give a local folder with"
        f" {flag[what]}"
    )
    first = str(exc).strip().splitlines()[0] if str(exc).strip() else type(exc).__name__
    return f"{where} ({first}){hint}. Nothing falls back to random weights."


def _revision(options: CaptionerOptions) -> str | None:
    """The Hub commit the model's files came from (None for a local folder)."""
    if os.path.isdir(options.model):
        return None
    try:
        from huggingface_hub import try_to_load_from_cache

        path = try_to_load_from_cache(
            options.model, "config.json", cache_dir=options.cache_dir, revision=options.revision
        )
    except Exception:
        return options.revision
    if isinstance(path, str) and "/snapshots/" in path:
        return path.split("/snapshots/", 1)[1].split("/", 1)[0]
    return options.revision


def _config_frames(model, name: str) -> int:
    frames = getattr(getattr(model.config, "encoder", None), "num_frames", None)
    if not isinstance(frames, int) or frames < 1:
        raise CaptionModelError(
            f"{name}'s encoder config has no num_frames (is it a video encoder?): give the"
            " frames per clip with --num-frames"
        )
    return frames


def _tokenizer_sha256(tokenizer) -> str:
    backend = getattr(tokenizer, "backend_tokenizer", None)
    if backend is not None:
        return _sha256_text(backend.to_str())
    vocab = tokenizer.get_vocab()
    return _sha256_text(json.dumps(sorted(vocab.items()), ensure_ascii=False))


def _sha256_text(text: str) -> str:
    return hashlib.sha256(text.encode("utf-8")).hexdigest()


@contextlib.contextmanager
def _quiet_transformers():
    """transformers' warnings that do not apply here: an attention mask for a batch of
    pixel inputs (all clips have the same frames, nothing is padded), and the progress bar
    of a load. Missing weights are checked by :func:`_load_model`, not left to a log line."""
    from transformers.utils import logging as hf_logging

    level = hf_logging.get_verbosity()
    hf_logging.set_verbosity_error()
    bars = hf_logging.is_progress_bar_enabled()
    hf_logging.disable_progress_bar()
    try:
        yield
    finally:
        hf_logging.set_verbosity(level)
        if bars:
            hf_logging.enable_progress_bar()
