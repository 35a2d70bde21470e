"""CPSN with its threshold learnt through BatchNorm (docs/neurons.md §2, paper appendix C).

Training normalises the membrane with batch statistics and folds that normalisation into the
weights *before* quantising, so the network learns with exactly the power-of-two weights the
hardware will hold:

    training:   h = conv(X, W)                      (float W: batch mean μ_B, variance σ_B²)
                W_f = γ·W / sqrt(σ_B² + ε),   b_f = β − γ·μ_B / sqrt(σ_B² + ε)
                S = Θ(conv(X, Q(W_f)) + b_f)
    inference:  the same with the running μ, σ²; :meth:`CPSNBN.to_cpsn` returns that folded
                neuron as a plain :class:`~spikeforge.golden.cpsn.CPSN`, whose
                :meth:`~spikeforge.golden.cpsn.CPSN.to_config` is the hardware configuration.

γ starts at 1 and β at −1 (threshold 1 on the normalised membrane); ε and momentum are
PyTorch's BatchNorm defaults, which the paper leaves open.
"""

import math

import torch
import torch.nn.functional as F
from torch import nn

from .cpsn_config import CPSNConfig
from .cpsn import CPSN, quantize_power_of_two
from .surrogate import ATan

__all__ = ["CPSNBN"]


def _causal_conv(x: torch.Tensor, weight: torch.Tensor, bias: torch.Tensor | None,
                 dilation: int) -> torch.Tensor:
    """Depthwise causal dilated convolution over time of ``x [T, ..., C]`` (as in CPSN)."""
    channels, order = weight.shape
    steps = x.shape[0]
    seq = x.reshape(steps, -1, channels).permute(1, 2, 0)  # [N, C, T]
    seq = F.pad(seq, ((order - 1) * dilation, 0))
    h = F.conv1d(seq, weight.to(x.dtype).unsqueeze(1), None if bias is None else bias.to(x.dtype),
                 dilation=dilation, groups=channels)
    return h.permute(2, 0, 1).reshape(x.shape)


class CPSNBN(nn.Module):
    """CPSN whose per-channel threshold and weight scale come from a BatchNorm of H.

    Args:
        channels, order, dilation, exp_min, exp_max, quantize: as :class:`CPSN`; with
            ``quantize=False`` the module is a float CPSN followed by BatchNorm.
        eps, momentum: BatchNorm constants (PyTorch defaults).
        surrogate_function: surrogate gradient of Θ (default ``ATan()``).

    Parameters: ``weight [C, k]`` (exp-initialised like CPSN), ``bn_weight`` γ and
    ``bn_bias`` β ``[C]``; buffers ``running_mean``, ``running_var`` (unbiased, as BatchNorm).
    """

    def __init__(self, channels: int, order: int, dilation: int = 1, *, exp_min: int = -4,
                 exp_max: int = 0, quantize: bool = True, eps: float = 1e-5,
                 momentum: float = 0.1, surrogate_function: nn.Module | None = None):
        super().__init__()
        # Refuse exactly what the hardware description refuses.
        CPSNConfig(channels=channels, order=order, dilation=dilation, exp_min=exp_min,
                   exp_max=exp_max, signs=torch.zeros(channels, order, dtype=torch.int64),
                   exponents=torch.full((channels, order), exp_min), bias=[0] * channels)
        if not eps > 0 or not 0 < momentum <= 1:
            raise ValueError(f"CPSNBN needs eps > 0 and 0 < momentum <= 1, got eps={eps}, "
                             f"momentum={momentum}")
        self.channels, self.order, self.dilation = channels, order, dilation
        self.exp_min, self.exp_max, self.quantize = exp_min, exp_max, quantize
        self.eps, self.momentum = eps, momentum
        init = torch.exp2(-torch.arange(order - 1, -1, -1, dtype=torch.float32))
        self.weight = nn.Parameter(init.repeat(channels, 1))
        self.bn_weight = nn.Parameter(torch.ones(channels))
        self.bn_bias = nn.Parameter(torch.full((channels,), -1.0))
        self.register_buffer("running_mean", torch.zeros(channels))
        self.register_buffer("running_var", torch.ones(channels))
        self.surrogate_function = surrogate_function if surrogate_function is not None else ATan()

    def folded(self, mean: torch.Tensor, var: torch.Tensor):
        """``(W_f, b_f)`` for the statistics ``mean``, ``var`` (before quantisation)."""
        scale = self.bn_weight / torch.sqrt(var + self.eps)
        return self.weight * scale[:, None], self.bn_bias - mean * scale

    def _statistics(self, x: torch.Tensor, valid: torch.Tensor | None = None):
        """Batch statistics of ``conv(X, W)`` in training (updating the running ones), over
        the ``valid`` steps only when given (``[T, N]`` booleans: samples padded at the end),
        else the running statistics."""
        if not self.training:
            return self.running_mean, self.running_var
        h = _causal_conv(x, self.weight, None, self.dilation)
        h = h.reshape(-1, self.channels) if valid is None else h[valid].reshape(-1, self.channels)
        mean, var = h.mean(0), h.var(0, unbiased=False)
        with torch.no_grad():
            count = h.shape[0]
            unbiased = var * (count / max(count - 1, 1))
            self.running_mean.lerp_(mean.to(self.running_mean.dtype), self.momentum)
            self.running_var.lerp_(unbiased.to(self.running_var.dtype), self.momentum)
        return mean, var

    def membrane(self, x: torch.Tensor, valid: torch.Tensor | None = None) -> torch.Tensor:
        """H for a time-first input ``[T, ..., C]`` (``valid``: see :meth:`_statistics`)."""
        if x.ndim < 2 or x.shape[-1] != self.channels:
            raise ValueError(f"CPSNBN expects a time-first input [T, ..., {self.channels}], "
                             f"got {list(x.shape)}")
        if torch.isnan(x).any():
            raise ValueError("CPSNBN input contains NaN")
        weight, bias = self.folded(*self._statistics(x, valid))
        if self.quantize:
            weight = quantize_power_of_two(weight, self.exp_min, self.exp_max)
        return _causal_conv(x, weight, bias, self.dilation)

    def forward(self, x: torch.Tensor, valid: torch.Tensor | None = None) -> torch.Tensor:
        return self.surrogate_function(self.membrane(x, valid))

    @torch.no_grad()
    def to_cpsn(self, input_frac_bits: int | None = None) -> CPSN:
        """The inference neuron: a plain CPSN with ``W_f`` and ``b_f`` from the running stats.

        With ``input_frac_bits`` the bias is rounded (halves to even) to the hardware's
        accumulator unit ``2^(exp_min − input_frac_bits)``, so that the returned float CPSN
        fires exactly like the core built from its :meth:`~CPSN.to_config` for inputs on the
        ``2^−input_frac_bits`` grid.
        """
        weight, bias = self.folded(self.running_mean, self.running_var)
        if input_frac_bits is not None:
            unit = math.ldexp(1.0, self.exp_min - input_frac_bits)
            bias = torch.round(bias.double() / unit).mul(unit).to(bias.dtype)
        neuron = CPSN(self.channels, self.order, self.dilation, exp_min=self.exp_min,
                      exp_max=self.exp_max, quantize=self.quantize,
                      surrogate_function=self.surrogate_function).to(self.weight)
        neuron.weight.copy_(weight)
        neuron.bias.copy_(bias)
        return neuron

    def extra_repr(self) -> str:
        return (f"channels={self.channels}, order={self.order}, dilation={self.dilation}, "
                f"exp_range=[{self.exp_min}, {self.exp_max}], quantize={self.quantize}, "
                f"eps={self.eps}, momentum={self.momentum}")
