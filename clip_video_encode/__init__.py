"""Video frames to CLIP embeddings, written as webdataset shards, and the tools built on them.

The encode pipeline reads one way (``execute/run.py`` is the whole run in twenty lines):
``plan/`` (the input read into stable shards, ``run.json``, what is left to do), ``execute/``
(decode, then encode; local or on Ray), ``commit/`` (samples into shards, commit markers, the
dataset card), on ``models/`` (the encoder and its weights) and ``destination/`` (what a run
may touch in its destination). ``read.py`` reads a finished dataset. The tools built on a
dataset each have a subpackage: ``search/``, ``video_models/``, ``hierarchy/``,
``summarize/``, ``mix/``, ``caption/``.
"""
