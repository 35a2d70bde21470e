"""Float CPSN: the multiplication-free channel-wise parallel spiking neuron (docs/neurons.md §2).

    H[t][c] = Σ_{i<k} Q(W)[c][i] · X[t − (k−1−i)·d][c] + b[c],     S = Θ(H)

``Q`` rounds each weight to a signed power of two in the log domain, so the hardware replaces
every multiply by a shift (:mod:`spikeforge.golden.cpsn_int` is that hardware's bit-exact
model, and :meth:`CPSN.to_config` turns a trained module into its configuration).
"""

import math

import torch
import torch.nn.functional as F
from torch import nn

from .cpsn_config import CPSNConfig
from .fixed import signed_width
from .kernels import BACKENDS, triton_applies
from .surrogate import ATan

__all__ = ["quantize_power_of_two", "power_of_two_codes", "CPSN"]


def power_of_two_codes(weight: torch.Tensor, exp_min: int, exp_max: int):
    """Split ``Q(weight)`` into ``(sign, exponent)`` integer tensors.

    ``exponent = clip(round(log2 |w|), exp_min, exp_max)``; a weight below ``2^(exp_min−1)`` in
    magnitude (the midpoint between 0 and the smallest power) becomes sign 0: a disabled tap.
    """
    magnitude = weight.detach().abs()
    tiny = magnitude < math.ldexp(1.0, exp_min - 1)
    exponent = torch.round(torch.log2(magnitude.clamp_min(torch.finfo(weight.dtype).tiny)))
    exponent = exponent.clamp(exp_min, exp_max).to(torch.int64)
    sign = torch.sign(weight.detach()).to(torch.int64)
    sign = torch.where(tiny, torch.zeros_like(sign), sign)
    exponent = torch.where(tiny, torch.full_like(exponent, exp_min), exponent)
    return sign, exponent


class _PowerOfTwoSTE(torch.autograd.Function):
    """Whole-quantiser straight-through estimator: ``dQ/dw ≡ 1`` (plain round-STE gives NaNs)."""

    @staticmethod
    def forward(ctx, weight, exp_min, exp_max):
        sign, exponent = power_of_two_codes(weight, exp_min, exp_max)
        return sign.to(weight.dtype) * torch.exp2(exponent.to(weight.dtype))

    @staticmethod
    def backward(ctx, grad_output):
        return grad_output, None, None


def quantize_power_of_two(weight: torch.Tensor, exp_min: int = -4, exp_max: int = 0):
    """``Q(w) = sign(w)·2^clip(round(log2|w|), exp_min, exp_max)`` with a straight-through gradient."""
    return _PowerOfTwoSTE.apply(weight, exp_min, exp_max)


class CPSN(nn.Module):
    """Channel-wise PSN with power-of-two weights and a dilated causal temporal convolution.

    Args:
        channels: C, the size of the last input dimension.
        order: k, taps per channel.
        dilation: d, time steps between taps.
        exp_min, exp_max: exponent range of the power-of-two weights.
        quantize: train with ``Q(W)`` (straight-through); ``False`` gives the float CPSN.
        v_threshold: initial threshold, stored as the learnable bias ``b = −v_threshold``.
        surrogate_function: surrogate gradient of Θ (default ``ATan()``).
        backend: ``"torch"`` (default), ``"triton"`` (the fused kernel of
            :mod:`spikeforge.golden.kernels.cpsn`: ATan surrogate, float32/16 or bfloat16 input)
            or ``"auto"`` (Triton for CUDA inputs it can take, else torch). The kernel path does
            not scan the input for NaN (that would cost an extra read and a host sync).

    Input ``[T, N, ..., C]`` (time first), output spikes of the same shape. Weights start
    from SlidingPSN's exponential initialisation ``(2^−(k−1), …, 1/2, 1)`` in every channel.
    """

    def __init__(self, channels: int, order: int, dilation: int = 1, *, exp_min: int = -4,
                 exp_max: int = 0, quantize: bool = True, v_threshold: float = 1.0,
                 surrogate_function: nn.Module | None = None, backend: str = "torch"):
        super().__init__()
        if backend not in BACKENDS:
            raise ValueError(f"backend must be one of {BACKENDS}, got {backend!r}")
        # Validate through the hardware description so that both refuse the same values.
        CPSNConfig(channels=channels, order=order, dilation=dilation, exp_min=exp_min,
                   exp_max=exp_max, signs=torch.zeros(channels, order, dtype=torch.int64),
                   exponents=torch.full((channels, order), exp_min), bias=[0] * channels)
        self.channels, self.order, self.dilation = channels, order, dilation
        self.exp_min, self.exp_max, self.quantize = exp_min, exp_max, quantize
        init = torch.exp2(-torch.arange(order - 1, -1, -1, dtype=torch.float32))
        self.weight = nn.Parameter(init.repeat(channels, 1))
        self.bias = nn.Parameter(torch.full((channels,), -float(v_threshold)))
        self.surrogate_function = surrogate_function if surrogate_function is not None else ATan()
        self.backend = backend

    def effective_weight(self) -> torch.Tensor:
        if self.quantize:
            return quantize_power_of_two(self.weight, self.exp_min, self.exp_max)
        return self.weight

    def membrane(self, x: torch.Tensor) -> torch.Tensor:
        """H for a time-first input ``[T, ..., C]``."""
        if x.ndim < 2 or x.shape[-1] != self.channels:
            raise ValueError(f"CPSN expects a time-first input [T, ..., {self.channels}], "
                             f"got {list(x.shape)}")
        if torch.isnan(x).any():
            raise ValueError("CPSN input contains NaN")
        steps = x.shape[0]
        seq = x.reshape(steps, -1, self.channels).permute(1, 2, 0)  # [N, C, T]
        seq = F.pad(seq, ((self.order - 1) * self.dilation, 0))
        weight = self.effective_weight().to(x.dtype).unsqueeze(1)  # [C, 1, k]
        h = F.conv1d(seq, weight, self.bias.to(x.dtype), dilation=self.dilation,
                     groups=self.channels)
        return h.permute(2, 0, 1).reshape(x.shape)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        if self._use_triton(x):
            return self._forward_triton(x)
        return self.surrogate_function(self.membrane(x))

    def _use_triton(self, x: torch.Tensor) -> bool:
        return triton_applies(self, x)

    def _forward_triton(self, x: torch.Tensor) -> torch.Tensor:
        from .kernels.cpsn import cpsn_spikes_triton
        if x.ndim < 2 or x.shape[-1] != self.channels:
            raise ValueError(f"CPSN expects a time-first input [T, ..., {self.channels}], "
                             f"got {list(x.shape)}")
        seq = x.reshape(x.shape[0], -1, self.channels)
        spikes = cpsn_spikes_triton(seq, self.effective_weight(), self.bias, self.dilation,
                                    self.surrogate_function.alpha)
        return spikes.reshape(x.shape)

    @torch.no_grad()
    def to_config(self, *, input_width: int = 8, input_frac_bits: int = 0, lanes: int = 1,
                  bias_width: int | None = None, membrane_out: bool = False) -> CPSNConfig:
        """The hardware configuration of this neuron for inputs ``x = X_int · 2^−input_frac_bits``.

        The bias is rounded to the nearest accumulator unit (halves to even); everything
        else is exact. ``bias_width=None`` takes the format's default width, widened to hold
        this bias; a given width that the bias does not fit raises ``ValueError``.
        """
        sign, exponent = power_of_two_codes(self.weight, self.exp_min, self.exp_max)
        scale = math.ldexp(1.0, input_frac_bits - self.exp_min)
        bias = torch.round(self.bias.double() * scale)
        if bias_width is None and bias.numel():
            default = CPSNConfig(channels=1, order=self.order, signs=[[0] * self.order],
                                 exponents=[[self.exp_min] * self.order], bias=[0],
                                 input_width=input_width, exp_min=self.exp_min,
                                 exp_max=self.exp_max).bias_width
            bias_width = max(default, signed_width(int(bias.min()), int(bias.max())))
        return CPSNConfig(channels=self.channels, order=self.order, dilation=self.dilation,
                          lanes=lanes, input_width=input_width, input_frac_bits=input_frac_bits,
                          exp_min=self.exp_min, exp_max=self.exp_max, bias_width=bias_width,
                          membrane_out=membrane_out, signs=sign.numpy(),
                          exponents=exponent.numpy(), bias=bias.numpy())

    def extra_repr(self) -> str:
        return (f"channels={self.channels}, order={self.order}, dilation={self.dilation}, "
                f"exp_range=[{self.exp_min}, {self.exp_max}], quantize={self.quantize}, "
                f"backend={self.backend!r}")
