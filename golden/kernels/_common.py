"""Pieces shared by the kernels: the ATan surrogate, argument checks, launch sizing."""

import math

import torch
import triton
import triton.language as tl  # noqa: F401  (the interpreter needs it beside @triton.jit)

from . import interpreting


@triton.jit
def atan_surrogate_grad(x, alpha):
    """dΘ/dx ≈ α / (2·(1 + (π·α·x/2)²)), the backward of :class:`spikeforge.golden.surrogate.ATan`.

    The recurrent kernels write it inline in their per-step loops: the interpreter pays a full
    re-patch of ``triton.language`` on every nested ``@triton.jit`` call.
    """
    z = 1.5707963267948966 * alpha * x
    return alpha * 0.5 / (1.0 + z * z)


def spike_dtype_ok(dtype: torch.dtype) -> bool:
    return dtype in (torch.float32, torch.float16, torch.bfloat16, torch.int8, torch.bool)


def input_dtype_ok(dtype: torch.dtype) -> bool:
    return dtype in (torch.float32, torch.float16, torch.bfloat16)


def target_programs(device: torch.device) -> int:
    """Programs that keep the device busy: 4 per SM on a GPU, a handful in the interpreter."""
    if interpreting() or device.type != "cuda":
        return 4
    return 4 * torch.cuda.get_device_properties(device).multi_processor_count


def pow2_clamp(n: int, low: int, high: int) -> int:
    """The power of two ≥ ``n`` clamped to ``[low, high]`` (Triton blocks are powers of two)."""
    return max(low, min(high, triton.next_power_of_2(max(int(n), 1))))


def cdiv(a: int, b: int) -> int:
    return -(-a // b)


def check_alpha(alpha: float) -> float:
    alpha = float(alpha)
    if not (alpha > 0 and math.isfinite(alpha)):
        raise ValueError(f"surrogate alpha must be a finite number > 0, got {alpha}")
    return alpha


def check_spikes_request(out_dtype, tensors) -> torch.dtype | None:
    """Validate ``out_dtype``; integer spikes carry no gradient, so refuse them under autograd."""
    if out_dtype is None:
        return None
    if not spike_dtype_ok(out_dtype):
        raise ValueError("out_dtype must be float32, float16, bfloat16, int8 or bool, "
                         f"got {out_dtype}")
    if not out_dtype.is_floating_point and torch.is_grad_enabled() and any(
            t.requires_grad for t in tensors):
        raise ValueError(f"out_dtype={out_dtype} spikes carry no gradient; use a float dtype or "
                         "torch.no_grad() for inference")
    return out_dtype
