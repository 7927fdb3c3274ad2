"""Ray cluster batch jobs: ``encode.py`` is what ``ray job submit`` runs."""
