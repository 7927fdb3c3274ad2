"""Committing a run's results: decode records and embeddings become samples, samples fill
shard writers in input order, a complete shard is committed (data, parquet, then its
``_stats.json`` marker), and the dataset card learns of it. The :class:`~.assembly.Assembly`
is the one path every executor feeds.

May import :mod:`..plan` (the shards and rows it is given) and :mod:`..destination`; never
the executors.
"""
