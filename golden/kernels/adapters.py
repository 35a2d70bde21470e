"""Glue between the golden neuron modules and the kernels: a line or two each to add ``"triton"``.

- LIF (:class:`~spikeforge.golden.lif.DecoupledResetLIF`, and :class:`~spikeforge.golden.lif.LIF`,
  whose spikes and gradients are the same): ``backends = ("torch", "triton")`` and
  ``_multi_step_triton = lif_multi_step`` in the class body.
- PRF: ``PRF.forward`` calls :func:`prf_multi_step` when :func:`triton_applies` (docs/kernels.md).
"""

import torch

from . import triton_applies
from .lif import lif_decoupled_triton
from .prf import prf_triton

__all__ = ["lif_multi_step", "prf_multi_step"]


def lif_multi_step(neuron, x_seq: torch.Tensor):
    """``_multi_step_triton`` of the soft-reset LIF neurons: ``(spike_seq, v_seq or None)``.

    :class:`~spikeforge.golden.base.ParallelNeuron` picks this for any CUDA input under
    ``"auto"``; inputs the kernel cannot take go back to ``_multi_step_torch``.
    """
    if not triton_applies(neuron, x_seq):
        return neuron._multi_step_torch(x_seq)
    out = lif_decoupled_triton(x_seq, neuron.tau, neuron.v_threshold,
                               neuron.surrogate_function.alpha, neuron.detach_reset,
                               return_membrane=neuron.store_v_seq)
    return out if neuron.store_v_seq else (out, None)


def prf_multi_step(neuron, x_seq: torch.Tensor, return_membrane: bool = False):
    """Multi-step PRF with the kernel: ``(spikes, Re ũ or None)`` for ``x_seq`` ``[T, ..., C]``.

    ``neuron`` supplies ``channels``, ``log_delta``, ``log_theta``, ``tau``, ``v_threshold`` and
    an ATan ``surrogate_function``; the membrane comes back when asked for.
    """
    seq = x_seq.reshape(x_seq.shape[0], -1, neuron.channels)
    out = prf_triton(seq, neuron.log_delta, neuron.log_theta, neuron.tau, neuron.v_threshold,
                     neuron.surrogate_function.alpha, return_membrane=return_membrane)
    if not return_membrane:
        return out.reshape(x_seq.shape), None
    return out[0].reshape(x_seq.shape), out[1].reshape(x_seq.shape)
