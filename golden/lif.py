"""Soft-reset LIF, sequential and with decoupled reset (Huang et al., arXiv 2410.03530;
docs/neurons.md §4).

Sequential reference, ``β = 1 − 1/τ``, ``u_{−1} = s_{−1} = 0``:

    u_t = β·(u_{t−1} − V_th·s_{t−1}) + c_t,     s_t = Θ(u_t − V_th)   (Θ fires on >= 0)

Unrolled, ``u_t = U'_t − V_th·A_t`` with the reset-free potential ``U'_t = Σ_{j<=t} β^(t−j)·c_j``
and the decayed spike count ``A_t = Σ_{j<t} β^(t−j)·s_j``. So ``u_t >= V_th`` is
``U'_t >= d_t = V_th·A_t + V_th``: the decoupled form computes U' in parallel (a causal
convolution) and then only a scalar O(T) pass for the dynamic threshold d (the paper's
Algorithm 2). The two forms give the same spikes and, because the threshold pass is
differentiated through ``A``, the same surrogate gradients (see :class:`DecoupledResetLIF`).
"""

import torch
from torch import nn

from .base import ParallelNeuron, check_tau, check_v_threshold

__all__ = ["CONV_MODES", "reset_free_potential", "LIF", "DecoupledResetLIF"]

CONV_MODES = ("scan", "fft")


def reset_free_potential(x_seq: torch.Tensor, beta: float, conv_mode: str = "scan"):
    """``U'_t = Σ_{j<=t} β^(t−j)·x_j`` over dim 0 of a time-first ``x_seq``, in parallel.

    ``"scan"``: Hillis–Steele doubling, ``log2 T`` steps of ``U[t] += β^o·U[t−o]`` with
    ``o = 1, 2, 4, …``: at most ``log2 T`` roundings per ``U'_t`` (measured in float32 at
    τ = 100, T = 32768: largest error 2.7e-5, the float32 recurrence's 2.1e-4). ``"fft"``:
    ``U' = iFFT(FFT(x, 2T)·FFT(K, 2T))[:T]`` with ``K_j = β^j``. Computed in ``x_seq``'s dtype;
    :class:`DecoupledResetLIF` passes float64 (see its "Precision").
    """
    if conv_mode not in CONV_MODES:
        raise ValueError(f"conv_mode must be one of {CONV_MODES}, got {conv_mode!r}")
    steps = x_seq.shape[0]
    if conv_mode == "scan":
        potential, offset = x_seq, 1
        while offset < steps:
            shifted = beta ** offset * potential[:-offset]
            potential = torch.cat([potential[:offset], potential[offset:] + shifted])
            offset *= 2
        return potential
    kernel = beta ** torch.arange(steps, dtype=x_seq.dtype, device=x_seq.device)
    kernel = kernel.view(steps, *([1] * (x_seq.ndim - 1)))
    spectrum = torch.fft.rfft(x_seq, n=2 * steps, dim=0) * torch.fft.rfft(kernel, n=2 * steps,
                                                                          dim=0)
    return torch.fft.irfft(spectrum, n=2 * steps, dim=0)[:steps]


class _SoftResetLIF(ParallelNeuron):
    """Parameters shared by both forms of the soft-reset LIF."""

    def __init__(self, tau, v_threshold, surrogate_function, detach_reset, backend, step_mode,
                 store_v_seq):
        super().__init__(surrogate_function=surrogate_function, backend=backend,
                         step_mode=step_mode, store_v_seq=store_v_seq)
        self.tau = check_tau(tau)
        self.v_threshold = check_v_threshold(v_threshold)
        self.detach_reset = bool(detach_reset)

    backends = ("torch", "triton")

    def _multi_step_triton(self, x_seq: torch.Tensor):
        # The fused kernel computes the decoupled-reset form: same spikes and gradients.
        from .kernels.adapters import lif_multi_step  # triton loads only when used
        return lif_multi_step(self, x_seq)

    @property
    def beta(self) -> float:
        return 1.0 - 1.0 / self.tau

    def extra_repr(self) -> str:
        return (f"tau={self.tau}, v_threshold={self.v_threshold}, "
                f"detach_reset={self.detach_reset}, {super().extra_repr()}")


class LIF(_SoftResetLIF):
    """Soft-reset LIF, computed step by step (the sequential reference of docs/neurons.md §4).

    ``u_t = β·(u_{t−1} − V_th·s_{t−1}) + c_t``, ``s_t = Θ(u_t − V_th)`` with ``β = 1 − 1/τ``.
    The input is not scaled by 1/τ (SpikingJelly's ``LIFNode`` with ``decay_input=True`` would
    integrate ``c_t/τ``) and the reset is soft (subtract V_th) and lands one step later.

    Args:
        tau: membrane time constant (> 1), default 2.
        v_threshold: V_th (> 0), default 1.
        surrogate_function: surrogate of Θ (default ``ATan()``).
        detach_reset: leave the reset term out of the backward pass, as SpikingJelly.
        backend, step_mode, store_v_seq: see :class:`ParallelNeuron`; ``v_seq``/``v`` hold
            ``u_t`` (compared with V_th; its reset is applied at the next step).
    """

    def __init__(self, tau: float = 2.0, v_threshold: float = 1.0,
                 surrogate_function: nn.Module | None = None, detach_reset: bool = False, *,
                 backend: str = "torch", step_mode: str = "m", store_v_seq: bool = False):
        super().__init__(tau, v_threshold, surrogate_function, detach_reset, backend, step_mode,
                         store_v_seq)
        self.register_memory("spike", None)

    def _step(self, x, v, spike):
        if v is not None:
            reset = spike.detach() if self.detach_reset else spike
            x = self.beta * (v - self.v_threshold * reset) + x
        return self.surrogate_function(x - self.v_threshold), x

    def _multi_step_torch(self, x_seq: torch.Tensor):
        v, spike, spikes, potentials = None, None, [], []
        for x in x_seq:
            spike, v = self._step(x, v, spike)
            spikes.append(spike)
            potentials.append(v)
        return torch.stack(spikes), torch.stack(potentials)

    def _single_step(self, x: torch.Tensor):
        self.spike, v = self._step(x, self.v, self.spike)
        return self.spike, v


class DecoupledResetLIF(_SoftResetLIF):
    """The same soft-reset LIF, computed with the decoupled reset (paper's Algorithm 2).

    First the reset-free potential ``U'`` for all steps at once (:func:`reset_free_potential`,
    ``conv_mode`` ``"scan"`` or ``"fft"``), then the O(T) dynamic-threshold pass::

        A = 0; d = V_th
        for t:  s_t = Θ(U'_t − d);  A = β·(A + s_t);  d = V_th·A + V_th

    Spikes equal :class:`LIF`'s (tested bit for bit in float64 up to T = 4096; a flip needs
    ``u_t`` within rounding error of V_th). ``v_seq`` holds ``u_t = U'_t − V_th·A_t``.

    Precision: ``U'`` and ``A`` are computed in float64 whatever the input's dtype (in
    single-step mode too); spikes and ``u`` come back in the input's dtype. Both grow to about
    τ times the input while their difference ``u`` stays near V_th, so a float32 threshold pass
    loses about ``log2 τ`` bits to cancellation. Measured on 64 neurons, T = 32768, float32
    input, against the float64 :class:`LIF` loop: at τ = 100 with input N(1, 0.5²) (97 %
    firing) float32 ``U'``/``A`` flipped 53 spikes (scan) and 26 (FFT), the float32 LIF loop
    2, this float64 pass none; at τ = 10, N(0, 1): 8 (scan), 0 (FFT), 0 (loop), none. The
    fused kernel (``backend="triton"``) carries the membrane after its reset in float32, which
    does not cancel (none flipped at τ = 100, see ``golden/kernels/lif.py``).

    Gradient: spikes use the surrogate of ``U'_t − d_t``, which equals ``u_t − V_th``, and
    autograd runs through ``A``, so the gradient is the sequential LIF's BPTT gradient:
    with ``detach_reset=False`` the full one (reset path included); with ``detach_reset=True``
    the spikes enter ``A`` detached and ``∂L/∂c_j = Σ_{t>=j} ∂L/∂s_t·Θ'(u_t − V_th)·β^(t−j)``,
    LIF's ``detach_reset=True`` gradient, a reverse causal convolution with no loop over spikes.
    The two forms agree up to the rounding of the surrogate's argument.

    Args:
        tau, v_threshold, surrogate_function, detach_reset, backend, step_mode, store_v_seq:
            as :class:`LIF`.
        conv_mode: how ``U'`` is computed, ``"scan"`` (default) or ``"fft"`` (O(T log T)).
    """

    def __init__(self, tau: float = 2.0, v_threshold: float = 1.0,
                 surrogate_function: nn.Module | None = None, detach_reset: bool = False,
                 conv_mode: str = "scan", *, backend: str = "torch", step_mode: str = "m",
                 store_v_seq: bool = False):
        super().__init__(tau, v_threshold, surrogate_function, detach_reset, backend, step_mode,
                         store_v_seq)
        if conv_mode not in CONV_MODES:
            raise ValueError(f"conv_mode must be one of {CONV_MODES}, got {conv_mode!r}")
        self.conv_mode = conv_mode
        self.register_memory("reset_free", None)
        self.register_memory("spike_trace", 0.0)  # A

    def _threshold_step(self, reset_free, spike_trace):
        """One step of the dynamic-threshold pass: ``(s_t, u_t, A_{t+1})``."""
        threshold = self.v_threshold * spike_trace + self.v_threshold
        spike = self.surrogate_function(reset_free - threshold)
        potential = reset_free - self.v_threshold * spike_trace
        counted = spike.detach() if self.detach_reset else spike
        return spike, potential, self.beta * (spike_trace + counted)

    def _multi_step_torch(self, x_seq: torch.Tensor):
        # float64 whatever the input: U' and A cancel in u (see "Precision" above).
        reset_free = reset_free_potential(x_seq.to(torch.float64), self.beta, self.conv_mode)
        spike_trace, spikes, potentials = 0.0, [], []
        for u_free in reset_free:
            spike, potential, spike_trace = self._threshold_step(u_free, spike_trace)
            spikes.append(spike)
            potentials.append(potential)
        return torch.stack(spikes).to(x_seq.dtype), torch.stack(potentials).to(x_seq.dtype)

    def _single_step(self, x: torch.Tensor):
        wide = x.to(torch.float64)
        self.reset_free = wide if self.reset_free is None else self.beta * self.reset_free + wide
        spike, potential, self.spike_trace = self._threshold_step(self.reset_free,
                                                                  self.spike_trace)
        return spike.to(x.dtype), potential.to(x.dtype)

    def extra_repr(self) -> str:
        return f"conv_mode={self.conv_mode}, {super().extra_repr()}"
