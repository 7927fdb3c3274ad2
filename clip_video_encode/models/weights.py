"""Which weights a model gets, and loading them without holding two copies in memory.

Weights are explicit: an open_clip pretrained tag, a local checkpoint path, or ``none`` for
random weights, which a user must ask for by name. A tag that cannot be downloaded is an error
that names the offline options; nothing ever falls back to random weights silently.

open_clip's own ``create_model`` first builds the model with random weights and then copies a
checkpoint into it, so for a moment it holds the model twice (ViT-B-32: 1.2 GB on top of torch
itself). Here the architecture is built on the ``meta`` device (no memory), and the checkpoint's
tensors, memory-mapped from the file, become the parameters (``assign=True``), then are
copied out of the mapping one by one (a mapping follows its file, and a file can be
overwritten in place); the text tower's tensors are never read unless it is kept.
open_clip's ``load_checkpoint`` still does its checkpoint conversions (old layouts,
positional-embedding resizing).

Every load also says which weights it gave (:func:`load_weights`): a SHA-256 that a dataset's
``run.json`` records, so that a resumed run, or a tool reading the dataset, never pairs it with
other weights that merely share a name or a path. For a checkpoint file (a path, or the file a
tag downloads) it is the file's own digest (what ``sha256sum`` prints): the file is read once,
in blocks, never held (ViT-L-14's 1.7 GB took 1.2 s from the page cache on a 2-core VM, its
random init 17 s), and it covers both towers, so an image-only encoder and a text-only query
tower of the same file agree. Weights without a file (``none``, and models
named ``hf-hub:``/``local-dir:`` that carry their own) are hashed as loaded tensors
(:func:`tensors_sha256`). Random weights (``none``) are drawn from a fixed seed
(:data:`RANDOM_SEED`), so the same model gets the same random weights on every run and every
encoder actor; other random weights would be another model.
"""

from __future__ import annotations

import contextlib
import functools
import hashlib
import itertools
import logging
import os
import zipfile

# The weights each model gets when --pretrained is not given (the best-known open release).
DEFAULT_PRETRAINED = {
    "ViT-B-32": "laion2b_s34b_b79k",
    "ViT-B-16": "laion2b_s34b_b88k",
    "ViT-L-14": "laion2b_s32b_b82k",
    "ViT-H-14": "laion2b_s32b_b79k",
}
SCHEMAS = ("hf-hub:", "local-dir:")  # open_clip model names that carry their own weights
# The seed of ``--pretrained none``'s weights. Not 0: scripts that save "random" checkpoints
# of their own mostly seed 0, and such a file should not equal ``none`` by chance.
RANDOM_SEED = 1


class EncoderLoadError(Exception):
    """The model or its weights could not be loaded; the message says what to do."""


def default_pretrained(model_name: str) -> str:
    """The tag used when the user names none; an error when the model has no tag at all."""
    import open_clip

    if model_name.startswith(SCHEMAS):
        return "schema"  # the weights come with the model name; --pretrained is not used
    tag = DEFAULT_PRETRAINED.get(model_name)
    tags = open_clip.list_pretrained_tags_by_model(model_name)
    if tag is None and tags:
        tag = tags[0]
    if tag is None:
        raise EncoderLoadError(
            f"{model_name} has no open_clip pretrained tag: pass --pretrained with a local"
            " checkpoint path, or --pretrained none for random weights"
        )
    return tag


class WeightsMismatch(EncoderLoadError):
    """The weights loaded are not those a dataset was encoded with."""


def load_model(
    model_name: str, pretrained: str, device: str, cache_dir: str | None = None, text: bool = True
):
    """The open_clip model in eval mode. With ``text=False`` the text tower may be left
    unloaded (its parameters on the ``meta`` device): only ``model.visual`` is usable then."""
    return _load(model_name, pretrained, device, cache_dir, text, digest=False)[0]


def load_weights(
    model_name: str,
    pretrained: str,
    device: str,
    cache_dir: str | None = None,
    text: bool = True,
    expect_sha256: str | None = None,
):
    """``(model, weights_sha256)``: :func:`load_model`'s model and the digest of the weights
    it got (see the module's docstring). ``expect_sha256``: the digest a dataset recorded;
    other weights raise :class:`WeightsMismatch` (naming both) instead of being used."""
    model, digest = _load(model_name, pretrained, device, cache_dir, text, digest=True)
    check_weights(expect_sha256, digest, f"{model_name} {pretrained}")
    return model, digest


def check_weights(expected: str | None, actual: str, what: str) -> None:
    """Raise :class:`WeightsMismatch` when a recorded digest is not that of the weights
    loaded. ``expected`` None (a dataset from before digests were recorded): nothing to
    compare with, accepted."""
    if expected and expected != actual:
        raise WeightsMismatch(
            f"the dataset was encoded with weights of sha256 {expected}, but {what} has sha256"
            f" {actual}: its embeddings would be compared with another model's; pass"
            " --pretrained with the checkpoint file the dataset was encoded with"
        )


def _load(model_name: str, pretrained: str, device: str, cache_dir, text: bool, digest: bool):
    """``(model, sha256 or None)``."""
    import open_clip

    if model_name.startswith(SCHEMAS):
        model = _create(model_name, None, device, cache_dir)
        return model, tensors_sha256(model) if digest else None
    if model_name not in open_clip.list_models():
        near = [m for m in open_clip.list_models() if model_name.lower()[:5] in m.lower()][:8]
        raise EncoderLoadError(
            f"unknown open_clip model {model_name!r}"
            + (f"; similar: {', '.join(near)}" if near else "; see open_clip.list_models()")
        )
    if pretrained.lower() == "none":
        return _random(model_name, device, cache_dir, digest)
    tag_cfg = open_clip.get_pretrained_cfg(model_name, pretrained)
    if not tag_cfg and not os.path.isfile(pretrained):
        tags = ", ".join(open_clip.list_pretrained_tags_by_model(model_name)) or "none"
        raise EncoderLoadError(
            f"--pretrained {pretrained!r} is neither a file nor an open_clip tag of"
            f" {model_name} (tags: {tags}); use 'none' for random weights"
        )
    checkpoint = pretrained
    if tag_cfg:
        try:
            checkpoint = open_clip.download_pretrained(tag_cfg, cache_dir=cache_dir)
        except Exception as exc:
            raise _download_error(model_name, pretrained, exc) from exc
        if not checkpoint:
            raise _download_error(model_name, pretrained, "no download source")
    before = _stamp(checkpoint)
    sha256 = file_sha256(checkpoint) if digest else None
    model = _assign_checkpoint(model_name, checkpoint, tag_cfg, text)
    if _stamp(checkpoint) != before:  # replaced while it was read: which weights did we get?
        raise EncoderLoadError(
            f"{checkpoint} changed while it was being loaded; run again once it is written"
        )
    if model is None:  # an architecture that cannot be built on meta: open_clip's own path
        return _create(model_name, checkpoint, device, cache_dir, tag_cfg), sha256
    if text or not image_tower_alone(model):
        return model.to(device).eval(), sha256
    model.visual.to(device)  # the rest stays on meta, unread
    return model.eval(), sha256


def _random(model_name: str, device: str, cache_dir, digest: bool):
    """Random weights drawn from :data:`RANDOM_SEED` on the CPU (the same on any machine with
    the same torch and open_clip), without touching the caller's random state."""
    import torch

    with torch.random.fork_rng(devices=[]):
        torch.manual_seed(RANDOM_SEED)
        model = _create(model_name, None, "cpu", cache_dir)
    sha256 = tensors_sha256(model) if digest else None
    return model.to(device), sha256


def file_sha256(path: str) -> str:
    """The SHA-256 of a file's bytes, read in 8 MiB blocks (never more in memory). Kept per
    process by path and :func:`_stamp`: a file replaced or rewritten is hashed anew."""
    stamp = (os.path.realpath(path), *_stamp(path))
    if stamp not in _FILE_DIGESTS:
        h = hashlib.sha256()
        with open(path, "rb") as f:
            while block := f.read(8 << 20):
                h.update(block)
        _FILE_DIGESTS[stamp] = h.hexdigest()
    return _FILE_DIGESTS[stamp]


_FILE_DIGESTS: dict[tuple, str] = {}


def tensors_sha256(model) -> str:
    """The SHA-256 of a model's state dict: each tensor's name, shape and float32 values, in
    name order (float32: the digest does not depend on the dtype the weights are held in)."""
    import torch

    h = hashlib.sha256()
    for name, tensor in sorted(model.state_dict().items()):
        t = tensor.detach().to("cpu", torch.float32).contiguous()
        h.update(f"{name}:{tuple(t.shape)}\n".encode())
        h.update(t.numpy().tobytes())
    return h.hexdigest()


def _assign_checkpoint(model_name: str, checkpoint: str, tag_cfg: dict, text: bool):
    """The model whose parameters are the checkpoint's tensors, or None where some tensor the
    kept towers need is not in the checkpoint (a buffer computed at construction)."""
    import open_clip
    import torch

    try:
        with torch.device("meta"), _quiet_random_init_warning():
            model = open_clip.create_model(
                model_name, device="meta", pretrained_image=False, pretrained_text=False
            )
    except Exception:
        return None
    # load_checkpoint ends in model.load_state_dict(state_dict, strict=True): have that call
    # assign the (memory-mapped) tensors instead of copying them into meta parameters.
    model.load_state_dict = functools.partial(torch.nn.Module.load_state_dict, model, assign=True)
    try:
        with _mmap_loads(checkpoint):
            open_clip.load_checkpoint(model, checkpoint)
    except Exception as exc:
        raise EncoderLoadError(f"cannot load {model_name} from {checkpoint}: {exc}") from exc
    finally:
        del model.load_state_dict
    kept = model.visual if (not text and image_tower_alone(model)) else model
    if text:
        _build_causal_masks(model)
    if any(t.is_meta for t in itertools.chain(kept.parameters(), kept.buffers())):
        return None
    _own_memory(kept)
    _tag_preprocess(model, tag_cfg)
    return model


def _own_memory(module) -> None:
    """Copy the memory-mapped tensors into the process's own memory, one at a time (one
    tensor's size at most is held twice). A mapping follows its file: a checkpoint
    overwritten in place (``cp`` keeps the inode) would silently change a loaded model, under
    the digest of the old weights, in a long run or a search server."""
    for tensor in itertools.chain(module.parameters(), module.buffers()):
        if not tensor.is_meta:
            tensor.data = tensor.data.clone()


def _stamp(path: str) -> tuple:
    """What changes when a file's bytes do. The change time too: ``cp -p`` of a file of the
    same size keeps the inode, the size and the modification time, and only the kernel sets
    the change time."""
    info = os.stat(path)
    return info.st_ino, info.st_size, info.st_mtime_ns, info.st_ctime_ns


def _build_causal_masks(model) -> None:
    """The text tower's causal attention mask is a buffer built at construction and never
    saved: built again here as open_clip builds it (-inf above the diagonal), so that a
    model built on ``meta`` keeps its text tower too without a second, random copy."""
    import open_clip
    import torch

    for module in model.modules():
        if not isinstance(module, (open_clip.model.CLIP, open_clip.transformer.TextTransformer)):
            continue
        mask = getattr(module, "attn_mask", None)
        if isinstance(mask, torch.Tensor) and mask.is_meta and mask.dim() == 2:
            n = mask.shape[0]
            module.attn_mask = torch.full((n, n), float("-inf")).triu_(1).to(mask.dtype)


@contextlib.contextmanager
def _mmap_loads(checkpoint: str):
    """``torch.load`` memory-maps the checkpoint inside this block where its format allows
    (torch's zip format; older pickles and safetensors load as usual)."""
    from torch.utils.serialization import config

    previous = config.load.mmap
    config.load.mmap = zipfile.is_zipfile(checkpoint)
    try:
        yield
    finally:
        config.load.mmap = previous


@contextlib.contextmanager
def _quiet_random_init_warning():
    """open_clip warns "initialized randomly" for an architecture built without weights; here
    the weights come right after, so the warning would mislead."""

    def drop(record: logging.LogRecord) -> bool:
        return "initialized randomly" not in record.getMessage()

    root = logging.getLogger()
    root.addFilter(drop)
    try:
        yield
    finally:
        root.removeFilter(drop)


def image_tower_alone(model) -> bool:
    """Whether ``encode_image`` is ``model.visual`` alone (so the rest can be dropped)."""
    import open_clip

    plain = (open_clip.model.CLIP.encode_image, open_clip.model.CustomTextCLIP.encode_image)
    return type(model).encode_image in plain


def _create(model_name: str, checkpoint, device: str, cache_dir, tag_cfg=None):
    """open_clip's own create_model (random init, then the checkpoint copied in)."""
    import open_clip

    try:
        model = open_clip.create_model(
            model_name, pretrained=checkpoint, device=device, cache_dir=cache_dir
        )
    except Exception as exc:
        raise EncoderLoadError(f"cannot load {model_name} from {checkpoint}: {exc}") from exc
    _tag_preprocess(model, tag_cfg)
    return model.eval()


def _tag_preprocess(model, tag_cfg: dict | None) -> None:
    """The tag's own mean/std/interpolation, as create_model sets them for a tag (the size
    stays the model's)."""
    if not tag_cfg:
        return
    import open_clip
    from open_clip.transform import merge_preprocess_dict

    tag_preprocess = {k: v for k, v in tag_cfg.items() if k != "size"}
    cfg = merge_preprocess_dict(open_clip.get_model_preprocess_cfg(model), tag_preprocess)
    open_clip.set_model_preprocess_cfg(model, cfg)


def _download_error(model_name: str, tag: str, cause) -> EncoderLoadError:
    return EncoderLoadError(
        f"cannot get the pretrained weights {tag!r} for {model_name}: {cause}.\n"
        "Offline, either pass a local checkpoint file (--pretrained /path/to/"
        "open_clip_pytorch_model.bin), point --cache-dir at a folder that already holds"
        " the downloaded weights (or set HF_HUB_CACHE), or ask for random weights with"
        " --pretrained none. On a machine without network, HF_HUB_OFFLINE=1 makes this"
        " fail at once instead of after retries."
    )
