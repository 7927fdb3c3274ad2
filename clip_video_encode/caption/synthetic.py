"""Random-weight captioners saved like a Hub model, for tests and the benchmark (no download).

:func:`save_random_captioner` writes a folder that ``clip-video-caption --model FOLDER``
loads through the same code as the default model: a TimeSformer encoder + GPT-2 decoder
``VisionEncoderDecoderModel`` (``save_pretrained``), a VideoMAE image processor and a GPT-2
tokenizer built offline from a small vocabulary (the byte alphabet, a few words, and fillers
up to the model's vocabulary size). ``size="tiny"`` captions a clip in milliseconds;
``size="spacetimegpt"`` has SpaceTimeGPT's architecture (TimeSformer-base, 8 frames of
224 px; GPT-2 124M with its 50,257-token vocabulary), for timing only.

Captions of random weights are strings of vocabulary words, the same on every run; the tiny
model's differ between clips of other frames.
"""

from __future__ import annotations

import os

WORDS = (
    "a man woman person dog cat is are playing riding cooking running dancing the on in with"
    " of guitar horse ball food street field kitchen stage water and"
).split()
SIZES = ("tiny", "spacetimegpt")


def save_random_captioner(folder: str, size: str = "tiny", seed: int = 0) -> str:
    """Write a random captioner of ``size`` into ``folder``; returns the folder."""
    import torch
    from transformers import (
        GPT2Config,
        TimesformerConfig,
        VideoMAEImageProcessor,
        VisionEncoderDecoderConfig,
        VisionEncoderDecoderModel,
    )

    if size not in SIZES:
        raise ValueError(f"size must be one of {', '.join(SIZES)}")
    os.makedirs(folder, exist_ok=True)
    vocab = 50257 if size == "spacetimegpt" else 320
    tokenizer = _tokenizer(vocab)
    eos = tokenizer.eos_token_id
    if size == "tiny":
        encoder = TimesformerConfig(image_size=32, patch_size=16, num_frames=8, hidden_size=32,
                                    num_hidden_layers=1, num_attention_heads=2,
                                    intermediate_size=64)  # fmt: skip
        decoder = GPT2Config(vocab_size=vocab, n_positions=64, n_embd=32, n_layer=1, n_head=2,
                             bos_token_id=eos, eos_token_id=eos)  # fmt: skip
        processor = VideoMAEImageProcessor(size={"shortest_edge": 32},
                                           crop_size={"height": 32, "width": 32})  # fmt: skip
    else:  # TimeSformer-base (k600's shape) and GPT-2 124M, as SpaceTimeGPT
        encoder = TimesformerConfig(num_frames=8)
        decoder = GPT2Config(bos_token_id=eos, eos_token_id=eos)
        processor = VideoMAEImageProcessor()
    config = VisionEncoderDecoderConfig.from_encoder_decoder_configs(encoder, decoder)
    config.decoder_start_token_id = eos
    config.pad_token_id = eos
    config.eos_token_id = eos
    torch.manual_seed(seed)
    model = VisionEncoderDecoderModel(config=config)
    if size == "tiny":
        with torch.no_grad():
            # Only the words can win (logit 0 for the rest), so captions read as words; the
            # cross-attention speaks up, so clips of other frames get other captions.
            keep = torch.zeros(vocab, dtype=torch.bool)
            keep[256 : 256 + len(WORDS)] = True
            model.decoder.lm_head.weight[~keep] = 0.0
            for block in model.decoder.transformer.h:
                block.crossattention.c_proj.weight.mul_(1000.0)
    model.save_pretrained(folder)
    processor.save_pretrained(folder)
    tokenizer.save_pretrained(folder)
    return folder


def _tokenizer(vocab_size: int):
    """A byte-level BPE tokenizer with ``vocab_size`` entries, the last ``<|endoftext|>``
    (as GPT-2's): the 256 byte symbols, the words of :data:`WORDS` with a leading space,
    then fillers. Built offline, no merges: text encodes byte by byte, ids decode to words."""
    from tokenizers import Tokenizer, decoders, models, pre_tokenizers
    from transformers import GPT2TokenizerFast

    alphabet = pre_tokenizers.ByteLevel.alphabet()
    entries = sorted(alphabet) + ["\u0120" + w for w in WORDS]
    entries += [f"\u0120w{i}" for i in range(vocab_size - 1 - len(entries))]
    entries.append("<|endoftext|>")
    table = {token: i for i, token in enumerate(entries)}
    bpe = Tokenizer(models.BPE(vocab=table, merges=[]))
    bpe.pre_tokenizer = pre_tokenizers.ByteLevel(add_prefix_space=False)
    bpe.decoder = decoders.ByteLevel()
    eos = "<|endoftext|>"
    return GPT2TokenizerFast(tokenizer_object=bpe, bos_token=eos, eos_token=eos, unk_token=eos)


def card_cache(cache_dir: str, folder: str, commit: str = "0" * 40) -> str:
    """Lay out a Hugging Face cache in ``cache_dir`` that holds ``folder``'s files under the
    default model's name and its card's companions (``MCG-NJU/videomae-base``, ``gpt2``), as
    a download would have left them: with ``HF_HUB_OFFLINE=1`` the default name then loads
    them. Returns the commit hash the snapshots are filed under."""
    from .model import CARD_COMPANIONS, DEFAULT_MODEL

    names = [DEFAULT_MODEL, *CARD_COMPANIONS[DEFAULT_MODEL]]
    for name in names:
        repo = os.path.join(cache_dir, "models--" + name.replace("/", "--"))
        snapshot = os.path.join(repo, "snapshots", commit)
        os.makedirs(snapshot, exist_ok=True)
        os.makedirs(os.path.join(repo, "refs"), exist_ok=True)
        with open(os.path.join(repo, "refs", "main"), "w") as f:
            f.write(commit)
        for leaf in os.listdir(folder):
            target = os.path.join(snapshot, leaf)
            if not os.path.exists(target):
                os.symlink(os.path.abspath(os.path.join(folder, leaf)), target)
    return commit
