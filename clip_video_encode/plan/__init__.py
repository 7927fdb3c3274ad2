"""Planning a run, before any video is decoded: the job and its settings, the input read
into stable shards (tables and webdataset tars), ``run.json`` written or checked, and the
shards and rows left to do.

May import :mod:`..models` (the encoder's options and description) and :mod:`..destination`;
never the executors or the commit path, which take the plan as plain data.
"""
