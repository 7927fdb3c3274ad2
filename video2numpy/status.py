"""Statuses written into every record, and the errors that map to them.

A bad video never raises out of the pipeline: its error becomes a status and a message in the
record, so one corrupt file costs one row, not a run.
"""

SUCCESS = "success"
FAILED_TO_FETCH = "failed_to_fetch"
FAILED_TO_DECODE = "failed_to_decode"
NO_FRAMES = "no_frames"  # decoded fine, but the sampling window holds no frame
TIMEOUT = "timeout"  # the worker made no progress within the per-video timeout


class FetchError(Exception):
    """The video could not be obtained (missing file, http error, timeout, size cap, ...)."""


class DecodeError(Exception):
    """The video was obtained but is not a decodable video stream."""
