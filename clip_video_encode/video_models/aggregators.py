"""Aggregators: a padded ``(frames, dim)`` sequence and its mask -> one L2-normalised video
embedding.

Parameter-free: ``mean``, ``max`` and ``center`` (the video's middle frame by time, LAION's
linear-probe input). Learned: ``wavg`` (a weight per position), ``attention`` (a learned positional
embedding, a small transformer, a masked mean) and ``cross-attention`` (learned queries
attending to the frames). Every learned one starts as mean pooling (its extra path is
initialised to add nothing), so training starts from the strong baseline and moves away only
as far as the captions ask.

Frames are L2-normalised first, as CLIP compares them. A checkpoint (``clip-video-train``)
holds the aggregator's config with its weights, so ``load_aggregator("agg.pt")`` needs
nothing else.
"""

from __future__ import annotations

import os
from dataclasses import asdict, dataclass

import numpy as np
import torch
import torch.nn.functional as F
from torch import nn

PARAMETER_FREE = ("mean", "max", "center")
LEARNED = ("wavg", "attention", "cross-attention")
NAMES = PARAMETER_FREE + LEARNED


@dataclass(frozen=True)
class AggregatorConfig:
    name: str
    dim: int
    max_frames: int = 32
    layers: int = 2  # attention: transformer layers
    heads: int = 0  # attention heads (0: the largest of 8, 4, 2, 1 that divides dim)
    queries: int = 4  # cross-attention: learned queries
    dropout: float = 0.1

    def n_heads(self) -> int:
        if self.heads:
            return self.heads
        return next(h for h in (8, 4, 2, 1) if self.dim % h == 0)


class Aggregator(nn.Module):
    """``forward(frames (B, T, D), mask (B, T) bool) -> (B, D)``, L2-normalised."""

    def __init__(self, config: AggregatorConfig) -> None:
        super().__init__()
        self.config = config

    def forward(self, frames: torch.Tensor, mask: torch.Tensor) -> torch.Tensor:
        frames = F.normalize(frames.float(), dim=-1)
        mask = mask.bool()
        return F.normalize(self.pool(frames, mask), dim=-1)

    def pool(self, frames: torch.Tensor, mask: torch.Tensor) -> torch.Tensor:
        raise NotImplementedError


def masked_mean(x: torch.Tensor, mask: torch.Tensor) -> torch.Tensor:
    weights = mask.unsqueeze(-1).to(x.dtype)
    return (x * weights).sum(1) / weights.sum(1).clamp(min=1.0)


class Mean(Aggregator):
    def pool(self, frames, mask):
        return masked_mean(frames, mask)


class Max(Aggregator):
    def pool(self, frames, mask):
        filled = frames.masked_fill(~mask.unsqueeze(-1), float("-inf"))
        out = filled.max(dim=1).values
        return torch.where(mask.any(1, keepdim=True), out, torch.zeros_like(out))


class Center(Aggregator):
    """The middle real frame of the sequence it is given (real frames come first, as
    ``pad_or_truncate`` lays them). The middle of a sequence already thinned to
    ``--max-frames`` is not the video's: :func:`frames_for` gives this aggregator the video's
    own middle frame, by time, alone."""

    def pool(self, frames, mask):
        middle = ((mask.sum(1) - 1).clamp(min=0) // 2).long()
        return frames[torch.arange(len(frames), device=frames.device), middle]


class WeightedAverage(Aggregator):
    """A learned weight per frame position (softmax over the real frames)."""

    def __init__(self, config):
        super().__init__(config)
        self.weights = nn.Parameter(torch.zeros(config.max_frames))

    def pool(self, frames, mask):
        t = frames.shape[1]
        logits = self.weights[:t].expand(len(frames), t).masked_fill(~mask, float("-inf"))
        w = torch.nan_to_num(logits.softmax(-1), nan=0.0)
        return (w.unsqueeze(-1) * frames).sum(1)


class Attention(Aggregator):
    """Positional embedding + a pre-norm transformer over the real frames + masked mean."""

    def __init__(self, config):
        super().__init__(config)
        d = config.dim
        self.position = nn.Parameter(torch.randn(config.max_frames, d) * 0.02)
        layer = nn.TransformerEncoderLayer(
            d, config.n_heads(), dim_feedforward=2 * d, dropout=config.dropout,
            batch_first=True, norm_first=True,
        )  # fmt: skip
        self.encoder = nn.TransformerEncoder(layer, config.layers, enable_nested_tensor=False)
        self.out = nn.Linear(d, d)
        nn.init.zeros_(self.out.weight)  # starts as mean pooling
        nn.init.zeros_(self.out.bias)

    def pool(self, frames, mask):
        t = frames.shape[1]
        attend = _some_frame(mask)
        hidden = self.encoder(frames + self.position[:t], src_key_padding_mask=~attend)
        return masked_mean(frames, mask) + self.out(masked_mean(hidden, mask))


class CrossAttention(Aggregator):
    """Learned queries attend to the frames; their mean, added to mean pooling."""

    def __init__(self, config):
        super().__init__(config)
        d = config.dim
        self.queries = nn.Parameter(torch.randn(config.queries, d) * 0.02)
        self.position = nn.Parameter(torch.randn(config.max_frames, d) * 0.02)
        self.norm = nn.LayerNorm(d)
        self.attention = nn.MultiheadAttention(
            d, config.n_heads(), dropout=config.dropout, batch_first=True
        )
        self.out = nn.Linear(d, d)
        nn.init.zeros_(self.out.weight)  # starts as mean pooling
        nn.init.zeros_(self.out.bias)

    def pool(self, frames, mask):
        t = frames.shape[1]
        keys = self.norm(frames + self.position[:t])
        queries = self.queries.unsqueeze(0).expand(len(frames), -1, -1)
        attended, _ = self.attention(queries, keys, keys, key_padding_mask=~_some_frame(mask))
        return masked_mean(frames, mask) + self.out(attended.mean(1))


def center_index(timestamps, n: int) -> int:
    """The frame nearest the middle of the video's frames by time (halfway between the first
    and the last; the earlier of two as near), so a video sampled unevenly (variable frame
    rate, dense then sparse) gets its middle moment, not its middle entry. By position
    where the timestamps are missing or do not match the frames."""
    times = None if timestamps is None else np.asarray(timestamps, dtype=np.float64)
    if n < 1 or times is None or times.shape != (n,) or not np.isfinite(times).all():
        return max(n - 1, 0) // 2
    return int(np.argmin(np.abs(times - (times.min() + times.max()) / 2)))


def frames_for(spec: str, embeddings: np.ndarray, timestamps, length: int):
    """``(frames (length, dim), mask (length,))``: what aggregator ``spec`` is given of one
    video's frame embeddings. ``center``: the middle frame by time alone, chosen from all the
    frames; any other: the frames thinned evenly to ``length`` (``pad_or_truncate``). Every
    reader that pools (clip-video-pool, and clip-video-eval through ``data.iter_batches``)
    cuts frames here, so that ``center`` is one frame everywhere."""
    from ..read import pad_or_truncate

    if spec == "center" and len(embeddings):
        middle = center_index(timestamps, len(embeddings))
        return pad_or_truncate(embeddings[middle : middle + 1], length)
    return pad_or_truncate(embeddings, length)


def _some_frame(mask: torch.Tensor) -> torch.Tensor:
    """A mask in which every row attends to something (a row with no real frame attends to
    its first padding position: all-masked attention gives NaN)."""
    empty = ~mask.any(1)
    if not empty.any():
        return mask
    mask = mask.clone()
    mask[empty, 0] = True
    return mask


_CLASSES = {"mean": Mean, "max": Max, "center": Center, "wavg": WeightedAverage,
            "attention": Attention, "cross-attention": CrossAttention}  # fmt: skip


def build(config: AggregatorConfig) -> Aggregator:
    if config.name not in _CLASSES:
        raise ValueError(f"unknown aggregator {config.name!r}: one of {', '.join(NAMES)}")
    return _CLASSES[config.name](config)


def load_aggregator(spec: str, dim: int, max_frames: int = 32, device: str = "cpu"):
    """An aggregator by name (parameter-free; a learned one by name has untrained weights and
    is refused) or from a checkpoint file written by ``clip-video-train``."""
    if spec in PARAMETER_FREE:
        return build(AggregatorConfig(spec, dim, max_frames)).to(device).eval()
    if spec in LEARNED:
        raise ValueError(
            f"--aggregator {spec} is learned: train it first (clip-video-train DATASET"
            f" --aggregator {spec} --out agg.pt) and pass the checkpoint file"
        )
    if not os.path.isfile(spec):
        raise FileNotFoundError(
            f"--aggregator {spec}: neither one of {', '.join(PARAMETER_FREE)} nor a checkpoint"
        )
    checkpoint = torch.load(spec, map_location="cpu", weights_only=False)
    config = AggregatorConfig(**checkpoint["config"])
    if config.dim != dim:
        raise ValueError(f"{spec} pools {config.dim}-d embeddings; this dataset's are {dim}-d")
    model = build(config)
    model.load_state_dict(checkpoint["state_dict"])
    return model.to(device).eval()


def config_dict(model: Aggregator) -> dict:
    return asdict(model.config)
