"""Fused Triton kernels for the parallel spiking neurons (design: docs/kernels.md).

The kernel modules are imported lazily, on first use of a function below: Triton decides at
``@triton.jit`` time whether a kernel is compiled or interpreted (``TRITON_INTERPRET=1``), so
importing this package must not fix that choice for the whole process.

- :func:`cpsn_spikes_triton` — CPSN (docs/neurons.md §2): dilated depthwise causal conv + bias + Θ.
- :func:`lif_decoupled_triton` — LIF with decoupled reset (docs/neurons.md §4).
- :func:`prf_triton` — PRF complex linear recurrence + Θ (docs/neurons.md §4).
- :func:`lif_multi_step`, :func:`prf_multi_step` — the neuron modules' hooks (``adapters``).
"""

import importlib
import os

__all__ = ["BACKENDS", "triton_available", "use_triton", "triton_applies", "cpsn_spikes_triton",
           "lif_decoupled_triton", "prf_triton", "lif_multi_step", "prf_multi_step"]

BACKENDS = ("torch", "triton", "auto")

_LAZY = {"cpsn_spikes_triton": ".cpsn", "lif_decoupled_triton": ".lif", "prf_triton": ".prf",
         "lif_multi_step": ".adapters", "prf_multi_step": ".adapters"}


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


def triton_applies(neuron, x) -> bool:
    """Whether ``neuron`` (with ``backend`` and ``surrogate_function``) runs its kernel on ``x``.

    The kernels implement the ATan surrogate for float32/16 and bfloat16 inputs. Under
    ``"auto"`` anything else goes to torch; under ``"triton"`` it raises ``ValueError``
    (``RuntimeError`` if the kernels cannot run on ``x``'s device, see :func:`use_triton`).
    """
    from ..surrogate import ATan
    backend = neuron.backend
    if backend == "torch":
        return False
    problem = None
    if type(neuron.surrogate_function) is not ATan:
        problem = ("the Triton kernels implement the ATan surrogate only, got "
                   f"{type(neuron.surrogate_function).__name__}")
    elif x.dtype not in _kernel_dtypes():
        problem = f"the Triton kernels take float32, float16 or bfloat16, got {x.dtype}"
    if problem is not None:
        if backend == "triton":
            raise ValueError(f"backend='triton': {problem}")
        return False
    return use_triton(backend, x)


def __getattr__(name):
    if name in _LAZY:
        return getattr(importlib.import_module(_LAZY[name], __name__), name)
    raise AttributeError(f"module {__name__!r} has no attribute {name!r}")
