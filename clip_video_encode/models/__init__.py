"""The image encoder and its weights: open_clip in torch or ONNX Runtime, precision and batch
size by device, which weights a run names and their digest.

May import video2numpy and nothing else of clip_video_encode: every other part of a run
(and search, summaries, video models) builds on it.
"""
