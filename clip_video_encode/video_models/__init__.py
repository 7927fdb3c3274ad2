"""From frame embeddings to video models: aggregators, training, video embeddings, evaluation.

A dataset written by ``clip-video-encode`` holds per-frame CLIP embeddings. This package pools
them into one embedding per video (:mod:`.aggregators`), trains the learned poolers against
the captions (:mod:`.train`, ``clip-video-train``), writes video embeddings
(:mod:`.pool`, ``clip-video-pool``) and measures them: zero-shot classification, text-video
retrieval, linear probes (:mod:`.metrics`, :mod:`.evaluate`, ``clip-video-eval``).
"""
