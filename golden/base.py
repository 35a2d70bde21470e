"""The contract every parallel spiking neuron in :mod:`spikeforge.golden` shares.

A neuron subclasses :class:`ParallelNeuron` and gets, with SpikingJelly's names:

* ``step_mode="m"`` (default): ``forward(x_seq)`` takes a time-first ``[T, N, ...]`` float
  tensor and returns spikes of the same shape and dtype. Every multi-step call is one whole
  sequence starting from rest: no state is carried between calls.
* ``step_mode="s"``: ``forward(x)`` takes one time step ``[N, ...]`` and keeps the state it
  needs in *memories* until :meth:`ParallelNeuron.reset`. Only causal neurons
  (``causal`` is true) accept it; the others raise ``ValueError``.
* ``surrogate_function``: the surrogate of Θ used for the spikes (default ``ATan()``).
* ``backend``: ``"torch"``; ``"auto"`` picks the fastest kernel the neuron has for the
  input (today always ``"torch"``); ``"triton"`` raises ``NotImplementedError`` until the
  neuron lists it in ``backends``.
* ``store_v_seq``: keep the membrane of the last multi-step call in ``v_seq`` (the quantity
  each neuron compares with its threshold, see the neuron's docstring). Single-step mode
  always keeps the latest membrane in ``v``.
* Input checks: wrong rank, a sequence length other than the neuron's ``T`` and NaN or
  infinite values raise ``ValueError``; a non-float tensor raises ``TypeError``.

A subclass implements:

* ``_multi_step_torch(x_seq) -> (spike_seq, v_seq)``; a kernel named ``K`` is added by
  listing ``K`` in the class attribute ``backends`` and implementing ``_multi_step_K``, which
  may return ``None`` for ``v_seq`` when ``self._v_wanted`` is false (the call needs no
  membrane: ``store_v_seq`` is off and the caller did not ask for it);
* ``_single_step(x) -> (spike, v)`` if it is causal, keeping its state in attributes
  declared with :meth:`ParallelNeuron.register_memory` so that :meth:`reset` clears them;
* ``causal`` (class attribute, or a property when it depends on a parameter);
* optionally ``_check_input`` (call ``super()._check_input`` first) for checks of its own,
  e.g. the channel count.

A neuron that also hands its membrane to the caller (PRF's ``return_membrane``) calls
:meth:`ParallelNeuron._forward` with ``want_v=True``.
"""

import copy
import math

import torch
from torch import nn

from .surrogate import ATan

__all__ = ["ParallelNeuron", "STEP_MODES", "BACKENDS", "check_positive_int", "check_tau",
           "check_v_threshold"]

STEP_MODES = ("m", "s")
BACKENDS = ("torch", "triton", "auto")


def check_positive_int(name: str, value) -> int:
    """``value`` if it is an ``int`` >= 1, else a ``ValueError`` naming ``name``."""
    if isinstance(value, bool) or not isinstance(value, int) or value < 1:
        raise ValueError(f"{name} must be a positive integer, got {value!r}")
    return value


def check_tau(tau) -> float:
    """``tau`` as a float if ``beta = 1 − 1/tau`` is a decay in (0, 1), else ``ValueError``."""
    tau = float(tau)
    if not (math.isfinite(tau) and tau > 1):
        raise ValueError(f"tau must be a finite number > 1 (so that beta = 1 - 1/tau lies in "
                         f"(0, 1)), got {tau!r}")
    return tau


def check_v_threshold(v_threshold) -> float:
    """``v_threshold`` as a float if it is finite and positive, else ``ValueError``."""
    v_threshold = float(v_threshold)
    if not (math.isfinite(v_threshold) and v_threshold > 0):
        raise ValueError(f"v_threshold must be a finite number > 0, got {v_threshold!r}")
    return v_threshold


class ParallelNeuron(nn.Module):
    """Base class of the golden neurons; the contract is in the module docstring.

    Args:
        surrogate_function: surrogate gradient of Θ (default ``ATan()``).
        backend: ``"torch"``, ``"triton"`` or ``"auto"``.
        step_mode: ``"m"`` (multi-step, default) or ``"s"`` (single-step, causal neurons).
        store_v_seq: keep the last multi-step membrane in ``v_seq``.
        T: the sequence length the neuron is built for, or ``None`` if it takes any length.
    """

    causal: bool = True
    backends: tuple[str, ...] = ("torch",)

    def __init__(self, *, surrogate_function: nn.Module | None = None, backend: str = "torch",
                 step_mode: str = "m", store_v_seq: bool = False, T: int | None = None):
        super().__init__()
        self.T = None if T is None else check_positive_int("T", T)
        self.surrogate_function = surrogate_function if surrogate_function is not None else ATan()
        self.backend = backend
        self.store_v_seq = bool(store_v_seq)
        self._v_wanted = False
        self._memory_defaults = {}
        self.register_memory("v", None)
        self.register_memory("v_seq", None)
        self.step_mode = step_mode

    @property
    def step_mode(self) -> str:
        return self._step_mode

    @step_mode.setter
    def step_mode(self, value: str):
        if value not in STEP_MODES:
            raise ValueError(f"step_mode must be one of {STEP_MODES}, got {value!r}")
        if value == "s":
            self._require_causal()
        self._step_mode = value

    @property
    def backend(self) -> str:
        return self._backend

    @backend.setter
    def backend(self, value: str):
        if value not in BACKENDS:
            raise ValueError(f"backend must be one of {BACKENDS}, got {value!r}")
        if value != "auto" and value not in self.backends:
            raise NotImplementedError(
                f"backend={value!r}: no {value} kernel is available for {type(self).__name__} "
                f"yet (available: {self.backends}); use backend='torch' or 'auto'")
        self._backend = value

    def register_memory(self, name: str, value):
        """Declare state attribute ``name``; :meth:`reset` sets it back to ``value``."""
        self._memory_defaults[name] = value
        setattr(self, name, copy.deepcopy(value))

    def reset(self):
        """Clear the single-step state and the stored membrane (before each new sequence)."""
        for name, value in self._memory_defaults.items():
            setattr(self, name, copy.deepcopy(value))

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self._forward(x)[0]

    def _forward(self, x: torch.Tensor, *, want_v: bool = False):
        """``(spikes, membrane)`` of one call: input checks, the backend's step function, and
        ``v_seq``/``v`` kept as the contract says. ``want_v``: the caller needs the membrane
        even if ``store_v_seq`` is off (otherwise a kernel may skip it and return ``None``)."""
        if self.step_mode == "m":
            self._check_input(x, sequence=True)
            multi_step = getattr(self, f"_multi_step_{self._pick_backend(x)}")
            self._v_wanted = self.store_v_seq or bool(want_v)
            try:
                spike_seq, v_seq = multi_step(x)
            finally:
                self._v_wanted = False
            if self.store_v_seq:
                self.v_seq = v_seq
            return spike_seq, v_seq
        self._require_causal()
        self._check_input(x, sequence=False)
        spike, self.v = self._single_step(x)
        return spike, self.v

    def _pick_backend(self, x: torch.Tensor) -> str:
        if self.backend != "auto":
            return self.backend
        if "triton" in self.backends and x.is_cuda:
            return "triton"
        return "torch"

    def _require_causal(self):
        if not self.causal:
            raise ValueError(f"{type(self).__name__} is not causal here (each output needs the "
                             f"whole sequence), so it has no single-step mode; use step_mode='m'")

    def _check_input(self, x: torch.Tensor, *, sequence: bool):
        name = type(self).__name__
        if not isinstance(x, torch.Tensor) or not x.is_floating_point():
            raise TypeError(f"{name} expects a floating-point tensor, got "
                            f"{getattr(x, 'dtype', type(x).__name__)}")
        if sequence:
            if x.ndim < 2:
                raise ValueError(f"{name} (step_mode='m') expects a time-first input "
                                 f"[T, N, ...] of rank >= 2, got shape {list(x.shape)}")
            if self.T is not None and x.shape[0] != self.T:
                raise ValueError(f"{name} was built for T={self.T} time steps, got an input "
                                 f"with {x.shape[0]} (shape {list(x.shape)})")
        else:
            if x.ndim < 1:
                raise ValueError(f"{name} (step_mode='s') expects one time step [N, ...] of "
                                 f"rank >= 1, got a scalar")
            if self.v is not None and self.v.shape != x.shape:
                raise ValueError(f"{name} holds state of shape {list(self.v.shape)} but got an "
                                 f"input of shape {list(x.shape)}; call reset() first")
        if not torch.isfinite(x).all():
            raise ValueError(f"{name} input contains NaN or infinite values")

    def extra_repr(self) -> str:
        text = f"step_mode={self.step_mode}, backend={self.backend}"
        return text if self.T is None else f"T={self.T}, {text}"
