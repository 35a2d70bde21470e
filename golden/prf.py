"""Float PRF neuron (parallel resonate-and-fire, Huang et al., arXiv 2410.03530;
docs/neurons.md §4), time-first.

The complex membrane ``ũ_t = λ·ũ_{t−1} + Δ·c_t`` with ``λ = exp(Δ·(−1/τ + iθ))`` is linear, so
training can compute it in parallel (FFT or associative scan) and fire afterwards,
``s_t = Θ(Re ũ_t − V_th)``. The imaginary part plays the role of a reset. Three paths compute
the same membrane: the sequential recurrence is the reference, the FFT and the scan are the fast
ones; tests hold them to float64 agreement. :meth:`PRF.hardware_config` hands the trained
parameters to :class:`~spikeforge.golden.prf_config.PRFConfig` for the bit-exact integer model.
"""

import math

import torch
from torch import nn

from .prf_config import PRFConfig
from .base import ParallelNeuron, check_positive_int, check_v_threshold

__all__ = ["PRF", "MODES", "prf_membrane", "param_groups"]

MODES = ("recurrence", "fft", "scan")


def _recurrence(lam, drive):
    """The reference: one complex multiply-add per step."""
    state = torch.zeros_like(drive[0])
    states = []
    for drive_t in drive:
        state = lam * state + drive_t
        states.append(state)
    return torch.stack(states)


def _fft(log_lam, drive_scale, x):
    """``ũ = K * c`` with ``K_j = Δ·λ^j``; zero-padding to 2T makes the FFT convolution causal."""
    steps = x.shape[0]
    exponents = torch.arange(steps, dtype=x.dtype, device=x.device)[:, None]
    kernel = drive_scale * torch.exp(exponents * log_lam)  # [T, C]
    spectrum = torch.fft.fft(kernel, n=2 * steps, dim=0)[:, None, :] * torch.fft.fft(
        x, n=2 * steps, dim=0)
    return torch.fft.ifft(spectrum, dim=0)[:steps]


def _scan(lam, drive):
    """Hillis–Steele inclusive scan of ``(a1, b1) ∘ (a2, b2) = (a1·a2, a2·b1 + b2)``, log2(T) rounds."""
    steps = drive.shape[0]
    decay = lam.expand(steps, 1, lam.shape[-1])
    offset = 1
    while offset < steps:
        drive = torch.cat([drive[:offset], decay[offset:] * drive[:-offset] + drive[offset:]])
        decay = torch.cat([decay[:offset], decay[offset:] * decay[:-offset]])
        offset *= 2
    return drive


def prf_membrane(x: torch.Tensor, delta: torch.Tensor, theta: torch.Tensor, tau: float,
                 mode: str = "scan") -> torch.Tensor:
    """Complex membrane ``ũ`` ``[T, N, C]`` of input ``x`` ``[T, N, C]``, starting from zero.

    ``delta`` and ``theta`` are per channel ``[C]``. Differentiable in all three paths.
    """
    if mode not in MODES:
        raise ValueError(f"PRF mode must be one of {MODES}, got {mode!r}")
    if x.dim() != 3:
        raise ValueError(f"prf_membrane expects [T, N, C], got shape {tuple(x.shape)}")
    log_lam = torch.complex(-delta / tau, delta * theta)  # log λ = Δ·(−1/τ + iθ)
    if mode == "fft":
        return _fft(log_lam, delta, x)
    drive = torch.complex(delta * x, torch.zeros_like(x))
    lam = torch.exp(log_lam)
    if mode == "recurrence":
        return _recurrence(lam, drive)
    return _scan(lam, drive)


class PRF(ParallelNeuron):
    """Parallel resonate-and-fire neurons, one per channel (the last input dimension).

    ``ũ_t = λ·ũ_{t−1} + Δ·c_t`` with ``λ = exp(Δ·(−1/τ + iθ))`` per channel, from ``ũ_{−1} = 0``,
    and ``s_t = Θ(Re ũ_t − V_th)`` (docs/neurons.md §4). Follows the contract of
    :class:`~spikeforge.golden.base.ParallelNeuron`: ``step_mode="m"`` takes ``[T, *, C]``
    (time first), each call an independent sequence from rest; ``step_mode="s"`` takes ``[*, C]``
    for one step and keeps the complex state ``state`` until :meth:`reset` (PRF is causal, so
    streaming inference is exact). ``v_seq``/``v`` hold ``Re ũ``.

    Args:
        channels: C, one neuron (Δ, θ) per channel.
        tau: τ > 0 (the decay is ``e^{−Δ/τ}``), default 2.
        v_threshold: V_th (> 0), default 1.
        fr_scale: θ is initialised as ``2π·u/fr_scale``, u ~ U(0, 1].
        delta_min, delta_max: ``log Δ`` is initialised uniform in
            ``[log delta_min, log delta_max]``.
        surrogate_function: surrogate of Θ (default ``ATan()``).
        mode: how the multi-step torch path computes ``ũ``: ``"scan"`` (default),
            ``"fft"`` or ``"recurrence"`` (the reference); float64 agreement is tested.
        backend, step_mode, store_v_seq: see :class:`ParallelNeuron`; ``backend="triton"`` (or
            ``"auto"`` on CUDA) runs the fused kernel of :mod:`spikeforge.golden.kernels.prf`
            in multi-step mode (ATan surrogate, float32/16 or bfloat16 input).

    ``forward(x, return_membrane=True)`` returns ``(spikes, Re ũ)``.
    """

    backends = ("torch", "triton")

    def __init__(self, channels: int, tau: float = 2.0, v_threshold: float = 1.0,
                 fr_scale: float = 1.0, delta_min: float = 1e-3, delta_max: float = 1e-1,
                 surrogate_function: nn.Module | None = None, mode: str = "scan",
                 step_mode: str = "m", backend: str = "torch", *, store_v_seq: bool = False):
        super().__init__(surrogate_function=surrogate_function, backend=backend,
                         step_mode=step_mode, store_v_seq=store_v_seq)
        self.channels = check_positive_int("channels", channels)
        tau, fr_scale = float(tau), float(fr_scale)
        if not (math.isfinite(tau) and tau > 0):
            raise ValueError(f"tau must be a finite number > 0, got {tau!r}")
        if not (math.isfinite(fr_scale) and fr_scale > 0):
            raise ValueError(f"fr_scale must be a finite number > 0, got {fr_scale!r}")
        if not (0 < delta_min <= delta_max < math.inf):
            raise ValueError(f"delta_min, delta_max must satisfy 0 < delta_min <= delta_max "
                             f"(finite), got {delta_min!r}, {delta_max!r}")
        self.tau = tau
        self.v_threshold = check_v_threshold(v_threshold)
        self.mode = mode
        log_delta = torch.empty(channels).uniform_(math.log(delta_min), math.log(delta_max))
        # θ = 2π·u / fr_scale with u ~ U(0, 1]; (0, 1] rather than [0, 1) keeps log θ finite.
        theta = 2 * math.pi * (1 - torch.rand(channels)) / fr_scale
        self.log_delta = nn.Parameter(log_delta)
        self.log_theta = nn.Parameter(theta.log())
        self.register_memory("state", None)  # complex ũ of the last single step

    @property
    def mode(self) -> str:
        return self._mode

    @mode.setter
    def mode(self, value: str):
        if value not in MODES:
            raise ValueError(f"PRF mode must be one of {MODES}, got {value!r}")
        self._mode = value

    def neuron_parameters(self) -> list[nn.Parameter]:
        """The parameters that train with their own learning rate and no weight decay."""
        return [self.log_delta, self.log_theta]

    def forward(self, x: torch.Tensor, return_membrane: bool = False):
        """Spikes of the same shape as ``x``; with ``return_membrane`` also ``Re ũ``."""
        spikes, membrane = self._forward(x, want_v=return_membrane)
        return (spikes, membrane) if return_membrane else spikes

    def _check_input(self, x: torch.Tensor, *, sequence: bool):
        super()._check_input(x, sequence=sequence)
        if x.shape[-1] != self.channels:
            raise ValueError(f"PRF expects {self.channels} channels in the last dimension, "
                             f"got shape {tuple(x.shape)}")

    def _delta_theta(self, dtype):
        return self.log_delta.exp().to(dtype), self.log_theta.exp().to(dtype)

    def _multi_step_torch(self, x_seq: torch.Tensor):
        delta, theta = self._delta_theta(x_seq.dtype)
        flat = x_seq.reshape(x_seq.shape[0], -1, self.channels)
        membrane = prf_membrane(flat, delta, theta, self.tau, self.mode).real.reshape(x_seq.shape)
        return self.surrogate_function(membrane - self.v_threshold), membrane

    def _multi_step_triton(self, x_seq: torch.Tensor):
        from .kernels import triton_applies  # triton loads only when asked for
        if not triton_applies(self, x_seq):
            return self._multi_step_torch(x_seq)
        from .kernels.adapters import prf_multi_step
        return prf_multi_step(self, x_seq, self._v_wanted)

    def _single_step(self, x: torch.Tensor):
        delta, theta = self._delta_theta(x.dtype)
        flat = x.reshape(-1, self.channels)
        lam = torch.exp(torch.complex(-delta / self.tau, delta * theta))
        previous = 0 if self.state is None else self.state
        self.state = lam * previous + torch.complex(delta * flat, torch.zeros_like(flat))
        membrane = self.state.real.reshape(x.shape)
        return self.surrogate_function(membrane - self.v_threshold), membrane

    def hardware_config(self, **formats) -> PRFConfig:
        """Quantise this layer into a :class:`PRFConfig` (``formats`` go to ``from_float``)."""
        return PRFConfig.from_float(self.log_delta.detach().double().cpu().numpy(),
                                    self.log_theta.detach().double().cpu().numpy(),
                                    tau=self.tau, v_th=self.v_threshold, **formats)

    def extra_repr(self) -> str:
        return (f"channels={self.channels}, tau={self.tau}, v_threshold={self.v_threshold}, "
                f"mode={self.mode!r}, {super().extra_repr()}")


def param_groups(model: nn.Module, neuron_lr: float = 1e-3,
                 neuron_weight_decay: float = 0.0) -> list[dict]:
    """Optimizer groups: PRF neuron parameters apart (lr 1e-3, no weight decay, as in the paper)."""
    neuron = [p for module in model.modules() if isinstance(module, PRF)
              for p in module.neuron_parameters()]
    neuron_ids = {id(p) for p in neuron}
    others = [p for p in model.parameters() if id(p) not in neuron_ids]
    return [{"params": others},
            {"params": neuron, "lr": neuron_lr, "weight_decay": neuron_weight_decay}]
