"""A run's destination folder: what a run may write and remove there (only names it owns,
only inside it), one run at a time (the lease), and what counts as a committed shard.

Imports nothing else of clip_video_encode: planning, committing and the readers all obey it.
"""
