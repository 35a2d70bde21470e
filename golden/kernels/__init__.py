"""Fused Triton kernels for the parallel spiking neurons (design: docs/kernels.md).

The kernel modules are imported lazily, on first use of a function below: Triton decides at
``@triton.jit`` time whether a kernel is compiled or interpreted (``TRITON_INTERPRET=1``), so
importing this package must not fix that choice for the whole process.

- :func:`cpsn_spikes_triton` — CPSN (neurons.md §2): dilated depthwise causal conv + bias + Θ.
- :func:`lif_decoupled_triton` — LIF with decoupled reset (neurons.md §4).
- :func:`prf_triton` — PRF complex linear recurrence + Θ (neurons.md §4).
"""

import importlib
import os

__all__ = ["BACKENDS", "triton_available", "use_triton", "cpsn_spikes_triton",
           "lif_decoupled_triton", "prf_triton"]

BACKENDS = ("torch", "triton", "auto")

_LAZY = {"cpsn_spikes_triton": ".cpsn", "lif_decoupled_triton": ".lif", "prf_triton": ".prf"}


def _kernel_dtypes():
    import torch
    return (torch.float32, torch.float16, torch.bfloat16)


def interpreting() -> bool:
    """Whether Triton kernels run in the CPU interpreter (``TRITON_INTERPRET=1``)."""
    return os.environ.get("TRITON_INTERPRET", "0") == "1"


def triton_available() -> bool:
    """Triton importable and something to run it on: a CUDA device, or the interpreter."""
    try:
        import triton  # noqa: F401
    except ImportError:
        return False
    if interpreting():
        return True
    import torch
    return torch.cuda.is_available()


def use_triton(backend: str, x) -> bool:
    """Resolve a module's ``backend`` for input ``x``.

    ``"torch"`` → False; ``"auto"`` → True for a float32/16 or bfloat16 CUDA tensor when Triton
    is available; ``"triton"`` → True, or ``RuntimeError`` if the kernels cannot run on ``x``'s
    device (a wrong dtype is left to the kernel's own ``ValueError``).
    """
    if backend not in BACKENDS:
        raise ValueError(f"backend must be one of {BACKENDS}, got {backend!r}")
    if backend == "torch":
        return False
    runnable = triton_available() and (x.is_cuda or interpreting())
    if backend == "auto":
        return runnable and x.is_cuda and x.dtype in _kernel_dtypes()
    if not runnable:
        raise RuntimeError("backend='triton' needs Triton and a CUDA tensor (or TRITON_INTERPRET=1 "
                           f"for CPU tensors); got a {x.device.type} tensor, "
                           f"triton_available()={triton_available()}")
    return True


def __getattr__(name):
    if name in _LAZY:
        return getattr(importlib.import_module(_LAZY[name], __name__), name)
    raise AttributeError(f"module {__name__!r} has no attribute {name!r}")
