"""Captions for videos and their windows (``clip-video-caption``), and caption metrics
(``clip-video-caption eval``).

Captioning, plan -> execute -> commit:

- :mod:`.source`: what is read (tables, tars, one video, a clip-video-encode dataset), sharded
  as clip-video-encode shards it;
- :mod:`.frames`: each clip's frames, by video2numpy's sampler, per row, video or window (the
  windows of clip-video-hierarchy's clip level);
- :mod:`.model`: the captioner (a Hugging Face VisionEncoderDecoderModel; SpaceTimeGPT by
  default, loaded as its model card does);
- :mod:`.run`: sampling ahead in threads, batches in row order, one shard at a time;
- :mod:`.table`: the table's columns, per-shard parts with commit markers and exact resume,
  the final parquet;
- :mod:`.cli`: both commands.

Metrics: :mod:`.tokenize` (PTB, and its pure-Python equal), :mod:`.metrics` (pycocoevalcap's
scorers, plus the original CIDEr), :mod:`.formats` (COCO, VATEX, pipe files, tables,
datasets), :mod:`.evaluate` (matching ids, the chance level).

May import: the standard library, numpy, pyarrow, fsspec, tqdm, video2numpy, and from
clip_video_encode its library modules (dataset, shards, tars, writer, encoder, hierarchy's
windows); transformers, tokenizers and pycocoevalcap (the ``caption`` extra) only inside the
functions that need them, so the core install imports this package. Never another CLI module.
"""
