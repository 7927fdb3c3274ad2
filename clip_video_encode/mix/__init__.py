"""Mixing datasets (``clip-video-mix``): one training set from many encoded datasets and input
tables, without copies of one video and without evaluation videos (DESIGN.md section 6).

Modules, in the order a mix runs:

- :mod:`.identity`: a row's canonical source (YouTube id in any form, dataset clip names,
  normalised URL, file digest) and window;
- :mod:`.windows`: when two rows are one source clip (overlap, IoU), at millions of rows;
- :mod:`.content`: pooled embeddings, k-means, pairwise cosine per cluster (SemDeDup);
- :mod:`.inputs`: opening datasets and tables, their identities, rows and embeddings;
- :mod:`.plan`: weights, exclusion, same-source and content deduplication, in that order;
- :mod:`.fields`: one type per copied field across inputs;
- :mod:`.output`: the mixed dataset (resumable), :mod:`.tableout`: the mixed input table;
- :mod:`.report`: ``mix_report.json``, the pairs, the similarity histogram;
- :mod:`.run`: one mix end to end; :mod:`.cli`: the command line.

This package imports from ``clip_video_encode`` (reader, writer, card, lease, shards),
``video2numpy`` and ``converters.core``; nothing in the project imports it but its console
script.
"""
