"""Hierarchical features for hour-long videos, laid out as Video ReCap reads them: a feature
per clip window, a fixed number per segment, one per video (:mod:`.windows`, :mod:`.build`,
``clip-video-hierarchy``)."""
