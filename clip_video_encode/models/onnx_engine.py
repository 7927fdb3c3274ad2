"""The image tower on ONNX Runtime (``--engine onnxruntime``): fp32, or int8 by dynamic
quantisation, on the CPU.

On CPUs without bf16 units the encoder bounds a run, and ONNX Runtime's fused kernels and
int8 matrix products are the fastest thing there (``bench/encode.py``). The tower is exported
from the loaded torch model once per model and weights, and cached under a name that holds a
hash of the weights, so other weights never reuse a stale export. Nothing is assumed about
int8's fidelity: the encoder compares its first batch with torch fp32 (``Encoder``).
"""

from __future__ import annotations

import contextlib
import hashlib
import logging
import os
import tempfile
import warnings

import numpy as np

ONNX_PRECISIONS = ("fp32", "int8")
OPSET = 17


def cache_folder(cache_dir: str | None) -> str:
    """``cache_dir/onnx``, else ``$XDG_CACHE_HOME/clip-video-datasets/onnx`` (``~/.cache``)."""
    if cache_dir:
        return os.path.join(cache_dir, "onnx")
    base = os.environ.get("XDG_CACHE_HOME") or os.path.join(os.path.expanduser("~"), ".cache")
    return os.path.join(base, "clip-video-datasets", "onnx")


def weights_digest(module) -> str:
    """A hash of a module's parameters and buffers (names, shapes, dtypes and bytes)."""
    import torch

    h = hashlib.sha256()
    for name, tensor in sorted(module.state_dict().items()):
        t = tensor.detach().to("cpu").contiguous()
        h.update(f"{name}:{tuple(t.shape)}:{t.dtype}".encode())
        h.update(t.view(torch.uint8).numpy().tobytes() if t.numel() else b"")
    return h.hexdigest()[:20]


def exported_tower(
    visual, model_name: str, image_size: int, precision: str, cache_dir: str | None
) -> str:
    """The path of the tower's ONNX file in ``precision``, exported (and quantised) if it is
    not cached yet. Written under a temporary name and renamed, so encoders starting at once
    (Ray actors) never read a half-written file."""
    import torch

    if precision not in ONNX_PRECISIONS:
        raise ValueError(f"onnxruntime runs fp32 or int8, not {precision}")
    folder = cache_folder(cache_dir)
    os.makedirs(folder, exist_ok=True)
    stem = f"{model_name.replace('/', '_')}-{image_size}-{weights_digest(visual)}"
    fp32 = os.path.join(folder, f"{stem}-fp32.onnx")
    if not os.path.exists(fp32):
        probe = torch.zeros(2, 3, image_size, image_size)
        with _aside(fp32) as tmp, torch.no_grad(), _without_mha_fastpath(), _quiet():
            torch.onnx.export(
                visual.float().eval(),
                (probe,),
                tmp,
                input_names=["pixels"],
                output_names=["embeddings"],
                opset_version=OPSET,
                dynamo=False,
                dynamic_axes={"pixels": {0: "batch"}, "embeddings": {0: "batch"}},
            )
    if precision == "fp32":
        return fp32
    int8 = os.path.join(folder, f"{stem}-int8.onnx")
    if not os.path.exists(int8):
        from onnxruntime.quantization import QuantType, quantize_dynamic

        with _aside(int8) as tmp, _quiet():
            quantize_dynamic(fp32, tmp, weight_type=QuantType.QInt8)
    return int8


@contextlib.contextmanager
def _quiet():
    """The exporter's and quantiser's advice (tracer warnings, "run pre-processing first")
    is about their general use, not this tower: not shown to users."""
    root = logging.getLogger()
    level = root.level
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        root.setLevel(logging.ERROR)
        try:
            yield
        finally:
            root.setLevel(level)


class _without_mha_fastpath:
    """In eval mode without gradients, ``nn.MultiheadAttention`` runs a fused kernel that the
    ONNX exporter cannot translate; the plain path computes the same."""

    def __enter__(self) -> None:
        import torch

        self.mha = getattr(torch.backends, "mha", None)
        self.was = self.mha.get_fastpath_enabled() if self.mha else None
        if self.mha:
            self.mha.set_fastpath_enabled(False)

    def __exit__(self, *exc) -> None:
        if self.mha:
            self.mha.set_fastpath_enabled(self.was)


class _aside:
    """A temporary path next to ``path``, renamed onto it when the block succeeds."""

    def __init__(self, path: str) -> None:
        self.path = path

    def __enter__(self) -> str:
        handle, self.tmp = tempfile.mkstemp(dir=os.path.dirname(self.path), suffix=".onnx.part")
        os.close(handle)
        return self.tmp

    def __exit__(self, kind, *exc) -> None:
        if kind is None:
            os.replace(self.tmp, self.path)
        else:
            for leftover in (self.tmp, self.tmp + ".data"):
                if os.path.exists(leftover):
                    os.remove(leftover)


class OnnxTower:
    """An exported image tower run by ONNX Runtime: normalised float32 NCHW in, float32
    embeddings out."""

    def __init__(self, path: str, threads: int) -> None:
        import onnxruntime as ort

        options = ort.SessionOptions()
        options.intra_op_num_threads = max(1, threads)
        options.inter_op_num_threads = 1
        options.graph_optimization_level = ort.GraphOptimizationLevel.ORT_ENABLE_ALL
        # Idle threads sleep instead of spinning: the decode workers share these cores.
        options.add_session_config_entry("session.intra_op.allow_spinning", "0")
        self.session = ort.InferenceSession(path, options, providers=["CPUExecutionProvider"])
        self.path = path

    def __call__(self, pixels: np.ndarray) -> np.ndarray:
        return self.session.run(None, {"pixels": np.ascontiguousarray(pixels, np.float32)})[0]
