"""Float PRF neuron (parallel resonate-and-fire, Huang et al., arXiv 2410.03530), time-first.

The complex membrane ``ũ_t = λ·ũ_{t−1} + Δ·c_t`` with ``λ = exp(Δ·(−1/τ + iθ))`` is linear, so
training can compute it in parallel (FFT or associative scan) and fire afterwards,
``s_t = Θ(Re ũ_t − V_th)``. The imaginary part plays the role of a reset. Three paths compute
the same membrane: the sequential recurrence is the reference, the FFT and the scan are the fast
ones; tests hold them to float64 agreement. :meth:`PRF.hardware_config` hands the trained
parameters to :class:`~spikeforge.hw.prf_config.PRFConfig` for the bit-exact integer model.
"""

import math

import torch
from torch import nn

from ..hw.prf_config import PRFConfig
from .surrogate import ATan

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


class PRF(nn.Module):
    """Parallel resonate-and-fire neurons, one per channel (last dimension).

    ``step_mode="m"``: input ``[T, *, C]`` (time first), each call an independent sequence from
    zero state. ``step_mode="s"``: input ``[*, C]`` for one step; the state persists across
    calls until :meth:`reset` (PRF is causal, so streaming inference is exact).
    """

    def __init__(self, channels: int, tau: float = 2.0, v_threshold: float = 1.0,
                 fr_scale: float = 1.0, delta_min: float = 1e-3, delta_max: float = 1e-1,
                 surrogate_function: nn.Module | None = None, mode: str = "scan",
                 step_mode: str = "m", backend: str = "torch"):
        super().__init__()
        if backend not in ("torch", "triton", "auto"):
            raise ValueError(f"PRF backend must be 'torch', 'triton' or 'auto', got {backend!r}")
        self.backend = backend
        if mode not in MODES:
            raise ValueError(f"PRF mode must be one of {MODES}, got {mode!r}")
        if step_mode not in ("s", "m"):
            raise ValueError(f"PRF step_mode must be 's' or 'm', got {step_mode!r}")
        if not 0 < delta_min <= delta_max:
            raise ValueError(f"PRF needs 0 < delta_min <= delta_max, got {delta_min}, {delta_max}")
        if not (tau > 0 and fr_scale > 0):
            raise ValueError(f"PRF needs tau > 0 and fr_scale > 0, got {tau}, {fr_scale}")
        self.channels = channels
        self.tau = float(tau)
        self.v_threshold = float(v_threshold)
        self.mode = mode
        self.step_mode = step_mode
        self.surrogate_function = ATan() if surrogate_function is None else surrogate_function
        log_delta = torch.empty(channels).uniform_(math.log(delta_min), math.log(delta_max))
        # θ = 2π·u / fr_scale with u ~ U(0, 1]; (0, 1] rather than [0, 1) keeps log θ finite.
        theta = 2 * math.pi * (1 - torch.rand(channels)) / fr_scale
        self.log_delta = nn.Parameter(log_delta)
        self.log_theta = nn.Parameter(theta.log())
        self.state = None

    def reset(self) -> None:
        """Forget the single-step state (start of a new sequence)."""
        self.state = None

    def neuron_parameters(self) -> list[nn.Parameter]:
        """The parameters that train with their own learning rate and no weight decay."""
        return [self.log_delta, self.log_theta]

    def forward(self, x: torch.Tensor, return_membrane: bool = False):
        """Spikes of the same shape as ``x``; with ``return_membrane`` also ``Re ũ``."""
        if x.shape[-1] != self.channels:
            raise ValueError(f"PRF expects {self.channels} channels in the last dimension, "
                             f"got shape {tuple(x.shape)}")
        if self.step_mode == "m" and self.backend != "torch":
            from .kernels import triton_applies  # triton loads only when asked for
            if triton_applies(self, x):
                from .kernels.adapters import prf_multi_step
                spikes, membrane = prf_multi_step(self, x, return_membrane)
                return (spikes, membrane) if return_membrane else spikes
        delta = self.log_delta.exp().to(x.dtype)
        theta = self.log_theta.exp().to(x.dtype)
        if self.step_mode == "m":
            flat = x.reshape(x.shape[0], -1, self.channels)
            membrane = prf_membrane(flat, delta, theta, self.tau, self.mode).real.reshape(x.shape)
        else:
            flat = x.reshape(-1, self.channels)
            lam = torch.exp(torch.complex(-delta / self.tau, delta * theta))
            previous = 0 if self.state is None else self.state
            self.state = lam * previous + torch.complex(delta * flat, torch.zeros_like(flat))
            membrane = self.state.real.reshape(x.shape)
        spikes = self.surrogate_function(membrane - self.v_threshold)
        return (spikes, membrane) if return_membrane else spikes

    def hardware_config(self, **formats) -> PRFConfig:
        """Quantise this layer into a :class:`PRFConfig` (``formats`` go to ``from_float``)."""
        return PRFConfig.from_float(self.log_delta.detach().double().cpu().numpy(),
                                    self.log_theta.detach().double().cpu().numpy(),
                                    tau=self.tau, v_th=self.v_threshold, **formats)

    def extra_repr(self) -> str:
        return (f"channels={self.channels}, tau={self.tau}, v_threshold={self.v_threshold}, "
                f"mode={self.mode!r}, step_mode={self.step_mode!r}")


def param_groups(model: nn.Module, neuron_lr: float = 1e-3,
                 neuron_weight_decay: float = 0.0) -> list[dict]:
    """Optimizer groups: PRF neuron parameters apart (lr 1e-3, no weight decay, as in the paper)."""
    neuron = [p for module in model.modules() if isinstance(module, PRF)
              for p in module.neuron_parameters()]
    neuron_ids = {id(p) for p in neuron}
    others = [p for p in model.parameters() if id(p) not in neuron_ids]
    return [{"params": others},
            {"params": neuron, "lr": neuron_lr, "weight_decay": neuron_weight_decay}]
