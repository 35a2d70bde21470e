"""The PSN family (Fang et al., NeurIPS 2023; docs/neurons.md §1), as in SpikingJelly.

Every neuron fires ``S = Θ(H)`` on a membrane ``H`` that is a linear function of the input
sequence plus a bias initialised to −1 (threshold 1). Names, parameter shapes, defaults and
initialisation follow ``spikingjelly.activation_based.neuron.{PSN, MaskedPSN, SlidingPSN}``
(SpikingJelly 2.0), so a SpikingJelly state dict loads with ``load_state_dict`` (strict):
``weight``, ``bias`` and MaskedPSN's ``_lambda_`` unchanged; SpikingJelly's MaskedPSN also
stores its masks ``mask0`` (band) and ``mask1`` (ones), which :class:`MaskedPSN` checks
against its own ``k`` and ``T`` and then drops (it rebuilds them, not saving them). The one
difference in behaviour is the default ``step_mode="m"`` (SpikingJelly: ``"s"``).
"""

import math

import torch
import torch.nn.functional as F
from torch import nn

from .base import ParallelNeuron, check_positive_int

__all__ = ["PSN", "MaskedPSN", "SlidingPSN"]


class PSN(ParallelNeuron):
    """Parallel spiking neuron: ``H = W·X + b``, ``S = Θ(H)`` over the whole sequence.

    Not causal (``H[t]`` reads every time step), so multi-step only.

    Args:
        T: sequence length; ``W`` is ``T×T`` (kaiming_uniform, a = √5, i.e.
            U(−1/√T, 1/√T)) and ``b`` is ``[T, 1]``, initialised to −1.
        surrogate_function, backend, step_mode, store_v_seq: see :class:`ParallelNeuron`;
            ``v_seq`` holds ``H``.
    """

    causal = False

    def __init__(self, T: int, surrogate_function: nn.Module | None = None, *,
                 backend: str = "torch", step_mode: str = "m", store_v_seq: bool = False):
        super().__init__(surrogate_function=surrogate_function, backend=backend,
                         step_mode=step_mode, store_v_seq=store_v_seq, T=T)
        self.weight = nn.Parameter(torch.empty(T, T))
        self.bias = nn.Parameter(torch.full((T, 1), -1.0))
        nn.init.kaiming_uniform_(self.weight, a=math.sqrt(5))

    def _multi_step_torch(self, x_seq: torch.Tensor):
        h_seq = torch.addmm(self.bias, self.weight, x_seq.flatten(1)).view(x_seq.shape)
        return self.surrogate_function(h_seq), h_seq


class MaskedPSN(ParallelNeuron):
    """Masked PSN of order k: ``H = (W ⊙ M_k(λ))·X + b``, ``S = Θ(H)``.

    ``M_k[i][j] = 1`` if ``j <= i <= j+k−1`` else 0 (each output sees its last k inputs) and
    ``M_k(λ) = λ·M_k + (1−λ)·1``: λ anneals from a full matrix (λ = 0, non-causal) to the band
    (λ = 1, causal), usually with :meth:`lambda_schedule`. Single-step mode needs λ = 1 and
    keeps a queue of the last k inputs.

    Args:
        k: order, 1 <= k <= T.
        T: sequence length (``W`` T×T kaiming_uniform a = √5, ``b`` [T, 1] = −1).
        lambda_init: initial λ in [0, 1]; set it later through ``neuron.lambda_ = ...``.
            SpikingJelly's MaskedPSN state dict (with ``mask0``/``mask1``) loads strictly; our
            own has no masks, so load it into SpikingJelly with ``strict=False``.
        surrogate_function, backend, step_mode, store_v_seq: see :class:`ParallelNeuron`;
            ``v_seq``/``v`` hold ``H``.
    """

    def __init__(self, k: int, T: int, lambda_init: float = 0.0,
                 surrogate_function: nn.Module | None = None, *, backend: str = "torch",
                 step_mode: str = "m", store_v_seq: bool = False):
        # step_mode is set last: whether "s" is allowed depends on λ, registered below.
        super().__init__(surrogate_function=surrogate_function, backend=backend,
                         step_mode="m", store_v_seq=store_v_seq, T=T)
        self.k = check_positive_int("k", k)
        if k > T:
            raise ValueError(f"k must satisfy 1 <= k <= T={T}, got k={k}")
        self.weight = nn.Parameter(torch.empty(T, T))
        self.bias = nn.Parameter(torch.full((T, 1), -1.0))
        nn.init.kaiming_uniform_(self.weight, a=math.sqrt(5))
        ones = torch.ones(T, T)
        self.register_buffer("mask", torch.tril(ones) * torch.triu(ones, -(k - 1)),
                             persistent=False)
        # float64 so that λ is exactly the number set, whatever the weights' dtype.
        self.register_buffer("_lambda_", torch.tensor(0.0, dtype=torch.float64))
        self.lambda_ = lambda_init
        self.register_memory("time_step", 0)
        self.register_memory("queue", [])
        self.step_mode = step_mode

    @property
    def lambda_(self) -> float:
        return float(self._lambda_)

    @lambda_.setter
    def lambda_(self, value: float):
        value = float(value)
        if not 0.0 <= value <= 1.0:
            raise ValueError(f"lambda_ must lie in [0, 1], got {value!r}")
        self._lambda_.fill_(value)

    @property
    def causal(self) -> bool:
        return self.lambda_ >= 1.0

    @staticmethod
    def lambda_schedule(epoch: int, epochs: int) -> float:
        """The authors' annealing ``λ = min(8·epoch/(epochs−1), 1)`` (λ = 1 after 1/8 of it)."""
        if isinstance(epochs, bool) or not isinstance(epochs, int) or epochs < 2:
            raise ValueError(f"epochs must be an integer >= 2, got {epochs!r}")
        if isinstance(epoch, bool) or not isinstance(epoch, int) or not 0 <= epoch < epochs:
            raise ValueError(f"epoch must be an integer in [0, epochs={epochs}), got {epoch!r}")
        return min(8 * epoch / (epochs - 1), 1.0)

    def masked_weight(self) -> torch.Tensor:
        """``W ⊙ M_k(λ)``."""
        lam = self._lambda_.to(self.weight.dtype)
        return (lam * self.mask + (1.0 - lam)) * self.weight

    def _multi_step_torch(self, x_seq: torch.Tensor):
        h_seq = torch.addmm(self.bias, self.masked_weight(), x_seq.flatten(1)).view(x_seq.shape)
        return self.surrogate_function(h_seq), h_seq

    def _single_step(self, x: torch.Tensor):
        t = self.time_step
        if t >= self.T:
            raise OverflowError(f"MaskedPSN(T={self.T}) has already run {t} steps; call reset()")
        self.queue = (self.queue + [x])[-self.k:]
        taps = self.masked_weight()[t, t + 1 - len(self.queue): t + 1]
        h = torch.tensordot(taps, torch.stack(self.queue), dims=1) + self.bias[t, 0]
        self.time_step = t + 1
        return self.surrogate_function(h), h

    def _load_from_state_dict(self, state_dict, prefix, local_metadata, strict, missing_keys,
                              unexpected_keys, error_msgs):
        """Accept SpikingJelly's state dict: check its ``mask0``/``mask1``, drop them, and
        refuse a ``_lambda_`` outside [0, 1] (the setter's rule)."""
        expected = {"mask0": self.mask, "mask1": torch.ones_like(self.mask)}
        for name, want in expected.items():
            key = prefix + name
            if key not in state_dict:
                continue
            mask = state_dict.pop(key)
            if not (isinstance(mask, torch.Tensor) and mask.shape == want.shape
                    and torch.equal(mask.to(want.dtype), want.to(mask.device))):
                what = "the band mask M_k" if name == "mask0" else "a matrix of ones"
                error_msgs.append(
                    f"{key}: SpikingJelly's {name} must be {what} of this MaskedPSN "
                    f"(k={self.k}, T={self.T}); the state dict's differs (shape "
                    f"{list(getattr(mask, 'shape', []))}, expected {list(want.shape)}): it was "
                    f"saved from another k or T")
        key = prefix + "_lambda_"
        value = state_dict.get(key)
        if value is not None and not (isinstance(value, torch.Tensor) and value.numel() == 1
                                      and 0.0 <= float(value) <= 1.0):
            error_msgs.append(f"{key}: lambda_ must be one number in [0, 1], got {value!r}; "
                              f"it was not loaded")
            state_dict[key] = self._lambda_  # keep the current λ
        super()._load_from_state_dict(state_dict, prefix, local_metadata, strict, missing_keys,
                                      unexpected_keys, error_msgs)

    def extra_repr(self) -> str:
        return f"k={self.k}, lambda_={self.lambda_}, {super().extra_repr()}"


class SlidingPSN(ParallelNeuron):
    """Sliding PSN of order k: ``H[t] = Σ_{i<k} W_i·X[t−k+1+i] + b``, ``S[t] = Θ(H[t])``.

    Causal, one k-tap filter shared by all time steps and channels (``X[j] = 0`` for j < 0),
    so it takes any sequence length; single-step mode keeps a queue of the last k inputs.

    Args:
        k: order (taps).
        exp_init: ``W = (2^−(k−1), …, 1/4, 1/2, 1)`` (newest input weighted 1) if true, else
            kaiming_uniform (a = √5) of a ``[1, k]`` tensor, as SpikingJelly. ``b = −1``.
        surrogate_function, backend, step_mode, store_v_seq: see :class:`ParallelNeuron`;
            ``v_seq``/``v`` hold ``H``.
    """

    def __init__(self, k: int, exp_init: bool = True,
                 surrogate_function: nn.Module | None = None, *, backend: str = "torch",
                 step_mode: str = "m", store_v_seq: bool = False):
        super().__init__(surrogate_function=surrogate_function, backend=backend,
                         step_mode=step_mode, store_v_seq=store_v_seq)
        self.k = check_positive_int("k", k)
        if exp_init:
            weight = torch.exp2(-torch.arange(k - 1, -1, -1, dtype=torch.float32))
        else:
            weight = torch.empty(1, k)
            nn.init.kaiming_uniform_(weight, a=math.sqrt(5))
            weight = weight[0]
        self.weight = nn.Parameter(weight)
        self.bias = nn.Parameter(torch.tensor(-1.0))
        self.register_memory("queue", [])

    def _multi_step_torch(self, x_seq: torch.Tensor):
        steps = x_seq.shape[0]
        rows = x_seq.reshape(steps, -1).t().unsqueeze(1)  # [M, 1, T]
        h = F.conv1d(F.pad(rows, (self.k - 1, 0)), self.weight.view(1, 1, -1))
        h_seq = (h.squeeze(1).t() + self.bias).reshape(x_seq.shape)
        return self.surrogate_function(h_seq), h_seq

    def _single_step(self, x: torch.Tensor):
        self.queue = (self.queue + [x])[-self.k:]
        taps = self.weight[self.k - len(self.queue):]
        h = torch.tensordot(taps, torch.stack(self.queue), dims=1) + self.bias
        return self.surrogate_function(h), h

    def extra_repr(self) -> str:
        return f"order={self.k}, {super().extra_repr()}"
