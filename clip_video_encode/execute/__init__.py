"""Executing a run: decode, then encode, in the batches the batching rule forms. The local
executor (worker processes and an encoder thread) and the Ray executor (decode and encoder
actors, optionally several lanes) differ only here: both take the same plan and hand results
to the same commit path.

May import every other package of the encode pipeline (models, destination, plan, commit).
"""
