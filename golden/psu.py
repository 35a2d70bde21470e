"""The PSU family (Li et al., arXiv 2402.00449; docs/neurons.md §3): reset estimated, not computed.

Leaky integration and firing are decoupled: the membrane of every time step comes from T×T
matrix products, and the reset is replaced by an estimate built from the input, so the whole
sequence is computed at once. With ``β = 1 − 1/τ``:

    M1[i][j] = (1/τ)·β^(i−j)  for i >= j, else 0     (leaky integration of the input)
    M2[i][j] = −β^(i−j)       for i >  j, else 0     (decayed sum of earlier "resets")

**M1 and M2 are a reconstruction**: the upstream matrix builder (BrainCog) is missing, and
these are the matrices that make ``M1·X`` the LIF integration ``d_t = β·d_{t−1} + x_t/τ`` and
``M2·r`` the decayed reset ``−Σ_{j<t} β^(t−j)·r_j``.

All three neurons fire on ``V − V_th > 0`` (strictly greater, as the authors' code; the rest
of the project's Θ fires on ``>= 0``) and are causal, so they also run step by step.
"""

import math

import torch
from torch import nn

from .base import ParallelNeuron, check_tau, check_v_threshold

__all__ = ["psu_matrices", "PSU", "IPSU", "RPSU"]


def psu_matrices(T: int, tau: float = 2.0, *, dtype=torch.float64, device=None):
    """The reconstructed ``(M1, M2)`` for ``T`` steps (see the module docstring)."""
    beta = 1.0 - 1.0 / tau
    steps = torch.arange(T, device=device)
    lag = steps[:, None] - steps[None, :]
    power = torch.pow(torch.tensor(beta, dtype=dtype, device=device), lag.clamp(min=0).to(dtype))
    m1 = torch.where(lag >= 0, power / tau, torch.zeros_like(power))
    m2 = torch.where(lag > 0, -power, torch.zeros_like(power))
    return m1, m2


class _PSUBase(ParallelNeuron):
    """Shared parameters, strict firing and the recurrent form of ``M1·X`` and ``M2·r``."""

    def __init__(self, tau, v_threshold, surrogate_function, backend, step_mode, store_v_seq,
                 T=None):
        super().__init__(surrogate_function=surrogate_function, backend=backend,
                         step_mode=step_mode, store_v_seq=store_v_seq, T=T)
        self.tau = check_tau(tau)
        self.v_threshold = check_v_threshold(v_threshold)
        self.register_memory("reset_estimate", 0.0)  # (M2·r)_t, kept for the next step
        self.register_memory("last_reset_input", None)  # r_{t−1}

    @property
    def beta(self) -> float:
        return 1.0 - 1.0 / self.tau

    def fire(self, v: torch.Tensor) -> torch.Tensor:
        """``[V − V_th > 0]``; ``1 − Θ(V_th − V)`` keeps the (symmetric) surrogate gradient."""
        return 1.0 - self.surrogate_function(self.v_threshold - v)

    def matrices(self, x_seq: torch.Tensor):
        return psu_matrices(x_seq.shape[0], self.tau, dtype=x_seq.dtype, device=x_seq.device)

    def _next_reset_estimate(self, reset_input: torch.Tensor) -> torch.Tensor:
        """Step form ``(M2·r)_t = β·((M2·r)_{t−1} − r_{t−1})``; keeps ``r_t`` for the next step."""
        if self.last_reset_input is not None:
            self.reset_estimate = self.beta * (self.reset_estimate - self.last_reset_input)
        self.last_reset_input = reset_input
        return self.reset_estimate

    def extra_repr(self) -> str:
        return f"tau={self.tau}, v_threshold={self.v_threshold}, {super().extra_repr()}"


class _LearnedLowerTriangular(_PSUBase):
    """A learnable causal ``(W ⊙ tril(1))·X + b`` over T steps, for IPSU and RPSU.

    The papers do not give the initialisation; ours is ``nn.Linear(T, T)``'s (weight
    kaiming_uniform a = √5, bias U(−1/√T, 1/√T)), as a linear layer over time would have.
    """

    def __init__(self, T, tau, v_threshold, surrogate_function, backend, step_mode, store_v_seq):
        super().__init__(tau, v_threshold, surrogate_function, backend, step_mode, store_v_seq,
                         T=T)
        self.weight = nn.Parameter(torch.empty(T, T))
        self.bias = nn.Parameter(torch.empty(T, 1))
        nn.init.kaiming_uniform_(self.weight, a=math.sqrt(5))
        nn.init.uniform_(self.bias, -1.0 / math.sqrt(T), 1.0 / math.sqrt(T))
        self.register_buffer("causal_mask", torch.tril(torch.ones(T, T)), persistent=False)
        self.register_memory("time_step", 0)
        self.register_memory("history", [])

    def learned_seq(self, x_seq: torch.Tensor) -> torch.Tensor:
        weight = self.weight * self.causal_mask
        return torch.addmm(self.bias, weight, x_seq.flatten(1)).view(x_seq.shape)

    def learned_step(self, x: torch.Tensor) -> torch.Tensor:
        """Row t of :meth:`learned_seq` from the inputs seen since :meth:`reset`."""
        t = self.time_step
        if t >= self.T:
            raise OverflowError(f"{type(self).__name__}(T={self.T}) has already run {t} steps; "
                                f"call reset()")
        self.history = self.history + [x]
        self.time_step = t + 1
        return torch.tensordot(self.weight[t, :t + 1], torch.stack(self.history), dims=1) \
            + self.bias[t, 0]


class PSU(_PSUBase):
    """Parallel spiking unit: ``d1 = M1·X``, ``V = d1 + V_th·M2·σ(d1)``, ``S = [V − V_th > 0]``.

    The reset is estimated from σ(d1), a soft guess of the earlier spikes. No learnable
    parameters; takes any sequence length.

    Args:
        tau: membrane time constant (> 1), ``β = 1 − 1/τ``; default 2.
        v_threshold: V_th, default 1.
        surrogate_function, backend, step_mode, store_v_seq: see :class:`ParallelNeuron`;
            ``v_seq``/``v`` hold ``V``.
    """

    def __init__(self, tau: float = 2.0, v_threshold: float = 1.0,
                 surrogate_function: nn.Module | None = None, *, backend: str = "torch",
                 step_mode: str = "m", store_v_seq: bool = False):
        super().__init__(tau, v_threshold, surrogate_function, backend, step_mode, store_v_seq)
        self.register_memory("d1", None)

    def _multi_step_torch(self, x_seq: torch.Tensor):
        m1, m2 = self.matrices(x_seq)
        d1 = (m1 @ x_seq.flatten(1)).view(x_seq.shape)
        v_seq = d1 + self.v_threshold * (m2 @ torch.sigmoid(d1).flatten(1)).view(x_seq.shape)
        return self.fire(v_seq), v_seq

    def _single_step(self, x: torch.Tensor):
        self.d1 = x / self.tau if self.d1 is None else self.beta * self.d1 + x / self.tau
        v = self.d1 + self.v_threshold * self._next_reset_estimate(torch.sigmoid(self.d1))
        return self.fire(v), v


class IPSU(_LearnedLowerTriangular):
    """Integrated PSU: ``d1 = (W_I ⊙ tril(1))·X + b_I``, ``V = d1 + M2·X``, ``S = [V − V_th > 0]``.

    The integration is learned (``weight`` = W_I, T×T; ``bias`` = b_I, [T, 1]) and the reset is
    estimated from the input itself.

    Args:
        T: sequence length.
        tau: time constant of the reset estimate M2 (> 1), default 2.
        v_threshold: V_th, default 1.
        surrogate_function, backend, step_mode, store_v_seq: see :class:`ParallelNeuron`;
            ``v_seq``/``v`` hold ``V``.
    """

    def __init__(self, T: int, tau: float = 2.0, v_threshold: float = 1.0,
                 surrogate_function: nn.Module | None = None, *, backend: str = "torch",
                 step_mode: str = "m", store_v_seq: bool = False):
        super().__init__(T, tau, v_threshold, surrogate_function, backend, step_mode,
                         store_v_seq)

    def _multi_step_torch(self, x_seq: torch.Tensor):
        _, m2 = self.matrices(x_seq)
        v_seq = self.learned_seq(x_seq) + (m2 @ x_seq.flatten(1)).view(x_seq.shape)
        return self.fire(v_seq), v_seq

    def _single_step(self, x: torch.Tensor):
        v = self.learned_step(x) + self._next_reset_estimate(x)
        return self.fire(v), v


class RPSU(_LearnedLowerTriangular):
    """Reset PSU: ``d1 = M1·X``, ``d2 = (W_R ⊙ tril(1))·X + b_R``, ``V = d1 + M2·σ(d2)``,
    ``S = [V − V_th > 0]``.

    The integration is the fixed leaky one and the reset estimate is learned (``weight`` =
    W_R, T×T; ``bias`` = b_R, [T, 1]). As in the reference, ``M2·σ(d2)`` is not scaled by V_th.

    Args:
        T: sequence length.
        tau: membrane time constant (> 1), default 2.
        v_threshold: V_th, default 1.
        surrogate_function, backend, step_mode, store_v_seq: see :class:`ParallelNeuron`;
            ``v_seq``/``v`` hold ``V``.
    """

    def __init__(self, T: int, tau: float = 2.0, v_threshold: float = 1.0,
                 surrogate_function: nn.Module | None = None, *, backend: str = "torch",
                 step_mode: str = "m", store_v_seq: bool = False):
        super().__init__(T, tau, v_threshold, surrogate_function, backend, step_mode,
                         store_v_seq)
        self.register_memory("d1", None)

    def _multi_step_torch(self, x_seq: torch.Tensor):
        m1, m2 = self.matrices(x_seq)
        d1 = (m1 @ x_seq.flatten(1)).view(x_seq.shape)
        d2 = self.learned_seq(x_seq)
        v_seq = d1 + (m2 @ torch.sigmoid(d2).flatten(1)).view(x_seq.shape)
        return self.fire(v_seq), v_seq

    def _single_step(self, x: torch.Tensor):
        self.d1 = x / self.tau if self.d1 is None else self.beta * self.d1 + x / self.tau
        v = self.d1 + self._next_reset_estimate(torch.sigmoid(self.learned_step(x)))
        return self.fire(v), v
