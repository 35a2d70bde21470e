"""Fused kernels of the LIF with decoupled reset (docs/neurons.md §4,
``golden.lif.DecoupledResetLIF``).

The model is written with the reset-free potential and the spike trace::

    U'_t = β·U'_{t−1} + c_t;  d_t = V_th·A_t + V_th;  s_t = Θ(U'_t − d_t);  A_{t+1} = β·(A_t + s_t)

and ``u_t = U'_t − V_th·A_t`` is the membrane (``v_seq``). Per neuron, one pass over time
carries the membrane after its reset, ``r_t = u_t − V_th·s_t``, instead of ``U'`` and ``A``::

    u_t = β·r_{t−1} + c_t;  s_t = Θ(u_t − V_th)   (u_t − V_th = U'_t − d_t exactly)

``U'`` and ``A`` grow to about τ times the input and cancel in ``u``, so carried in float32
they lose ``log2 τ`` bits; ``r`` stays near ``V_th``. Measured in Triton's interpreter, 64
neurons, T = 32768, τ = 100, input N(1, 0.5²), against the float64 LIF loop: 17 flipped spikes
carrying ``(U', A)``, none carrying ``r`` (as the float32 loop). The threshold pass is nonlinear and
sequential, so the kernel parallelises over neurons only: a program owns ``BLOCK_M`` neurons
(``M = N·C`` contiguous) and walks ``T`` in tiles of ``BLOCK_T`` steps, each tile one wide load
whose steps are then walked in registers.

Gradient, exactly :class:`DecoupledResetLIF`'s autograd: spikes use ATan'(U'_t − d_t) and the
threshold is differentiated through ``A`` unless ``detach_reset``. With ``C_t = ∂L/∂c_t``,
walking ``t`` backwards::

    R_t = β·C_{t+1};   ∂L/∂s_t = g_t − V_th·R_t  (g_t alone with detach_reset)
    G_t = ∂L/∂s_t · ATan'(U'_t − d_t) + ∂L/∂u_t;   C_t = G_t + R_t

Saved for the backward: ``r`` at the end of each tile (4 bytes per ``BLOCK_T`` steps per
neuron); the backward recomputes a tile's steps from its checkpoint, then walks them in reverse.
"""

import torch
import triton
import triton.language as tl

from ._common import (cdiv, check_alpha, check_spikes_request, input_dtype_ok, pow2_clamp,
                      target_programs)

__all__ = ["lif_decoupled_triton"]


@triton.jit
def _lif_fwd_kernel(x_ptr, s_ptr, v_ptr, ckpt_ptr, T, M, beta, v_th,
                    STORE_V: tl.constexpr, BLOCK_T: tl.constexpr, BLOCK_M: tl.constexpr):
    m = tl.program_id(0) * BLOCK_M + tl.arange(0, BLOCK_M)
    m_ok = m < M
    col = tl.arange(0, BLOCK_T)
    r = tl.zeros([BLOCK_M], tl.float32)  # the membrane after its reset
    for t0 in range(0, T, BLOCK_T):
        t = t0 + col
        xt = tl.load(x_ptr + t.to(tl.int64)[None, :] * M + m[:, None],
                     mask=m_ok[:, None] & (t < T)[None, :], other=0.0).to(tl.float32)
        for j in tl.static_range(BLOCK_T):
            u = beta * r + tl.sum(tl.where(col[None, :] == j, xt, 0.0), axis=1)
            spike = tl.where(u - v_th >= 0, 1.0, 0.0)
            # a vector row index: the interpreter refuses scalar masks and int loop indices
            row = m * 0 + t0 + j
            offs = row.to(tl.int64) * M + m
            ok = m_ok & (row < T)
            tl.store(s_ptr + offs, spike.to(s_ptr.dtype.element_ty), mask=ok)
            if STORE_V:
                tl.store(v_ptr + offs, u.to(v_ptr.dtype.element_ty), mask=ok)
            r = u - v_th * spike
        tl.store(ckpt_ptr + (m * 0 + t0 // BLOCK_T).to(tl.int64) * M + m, r, mask=m_ok)


@triton.jit
def _lif_bwd_kernel(x_ptr, ckpt_ptr, gs_ptr, gv_ptr, dx_ptr, T, M, beta, v_th, alpha,
                    DETACH_RESET: tl.constexpr, HAS_GV: tl.constexpr,
                    BLOCK_T: tl.constexpr, BLOCK_M: tl.constexpr):
    m = tl.program_id(0) * BLOCK_M + tl.arange(0, BLOCK_M)
    m_ok = m < M
    col = tl.arange(0, BLOCK_T)
    n_tiles = tl.cdiv(T, BLOCK_T)
    carry = tl.zeros([BLOCK_M], tl.float32)  # C_{t+1} = ∂L/∂c_{t+1}
    for it in range(0, n_tiles):
        tile = n_tiles - 1 - it
        t = tile * BLOCK_T + col
        offs = t.to(tl.int64)[None, :] * M + m[:, None]
        ok = m_ok[:, None] & (t < T)[None, :]
        xt = tl.load(x_ptr + offs, mask=ok, other=0.0).to(tl.float32)
        gs = tl.load(gs_ptr + offs, mask=ok, other=0.0).to(tl.float32)
        if HAS_GV:
            gv = tl.load(gv_ptr + offs, mask=ok, other=0.0).to(tl.float32)
        r = tl.load(ckpt_ptr + (tile - 1).to(tl.int64) * M + m,
                    mask=m_ok & (m * 0 + tile > 0), other=0.0)
        h_tile = tl.zeros([BLOCK_M, BLOCK_T], tl.float32)
        for j in tl.static_range(BLOCK_T):  # recompute u_t − V_th from the checkpoint
            u = beta * r + tl.sum(tl.where(col[None, :] == j, xt, 0.0), axis=1)
            h = u - v_th
            h_tile = tl.where(col[None, :] == j, h[:, None], h_tile)
            r = u - v_th * tl.where(h >= 0, 1.0, 0.0)
        for jj in tl.static_range(BLOCK_T):
            j = BLOCK_T - 1 - jj
            h = tl.sum(tl.where(col[None, :] == j, h_tile, 0.0), axis=1)
            reset = beta * carry
            grad_s = tl.sum(tl.where(col[None, :] == j, gs, 0.0), axis=1)
            if not DETACH_RESET:
                grad_s -= v_th * reset
            z = 1.5707963267948966 * alpha * h  # ATan' inline (see _common)
            grad_h = grad_s * (0.5 * alpha / (1.0 + z * z))
            if HAS_GV:
                grad_h += tl.sum(tl.where(col[None, :] == j, gv, 0.0), axis=1)
            carry = grad_h + reset
            row = tile * BLOCK_T + j
            tl.store(dx_ptr + row.to(tl.int64) * M + m, carry.to(dx_ptr.dtype.element_ty),
                     mask=m_ok & (m * 0 + row < T))


def _plan(M: int, device: torch.device):
    """``(BLOCK_T, BLOCK_M, num_warps)``: one warp per 32 neurons, each thread one neuron and all
    ``BLOCK_T`` steps of its tile (no cross-thread traffic); longer tiles when there are too few
    programs to hide memory latency with occupancy."""
    block_m = pow2_clamp(M, 32, 128)
    block_t = 8 if cdiv(M, block_m) >= target_programs(device) else 16
    return block_t, block_m, block_m // 32


class _LIFSpikes(torch.autograd.Function):
    @staticmethod
    def forward(ctx, x, beta, v_th, alpha, detach_reset, out_dtype, store_v):
        T, M = x.shape[0], x[0].numel()
        block_t, block_m, num_warps = _plan(M, x.device)
        spikes = torch.empty(x.shape, dtype=out_dtype, device=x.device)
        v = torch.empty_like(x) if store_v else None
        ckpt = torch.empty((cdiv(T, block_t), M), dtype=torch.float32, device=x.device)
        s_arg = spikes.view(torch.int8) if out_dtype == torch.bool else spikes
        _lif_fwd_kernel[(cdiv(M, block_m),)](x, s_arg, v if store_v else x, ckpt, T, M, beta, v_th,
                                            STORE_V=store_v, BLOCK_T=block_t, BLOCK_M=block_m,
                                            num_warps=num_warps)
        ctx.save_for_backward(x, ckpt)
        ctx.params = (beta, v_th, alpha, detach_reset)
        ctx.set_materialize_grads(False)
        return spikes if v is None else (spikes, v)

    @staticmethod
    def backward(ctx, grad_spikes, grad_v=None):
        x, ckpt = ctx.saved_tensors
        beta, v_th, alpha, detach_reset = ctx.params
        T, M = x.shape[0], x[0].numel()
        block_t, block_m, num_warps = _plan(M, x.device)
        grad_spikes = torch.zeros_like(x) if grad_spikes is None else grad_spikes.contiguous()
        has_gv = grad_v is not None
        dx = torch.empty_like(x)
        _lif_bwd_kernel[(cdiv(M, block_m),)](
            x, ckpt, grad_spikes, grad_v.contiguous() if has_gv else grad_spikes, dx, T, M, beta,
            v_th, alpha, DETACH_RESET=detach_reset, HAS_GV=has_gv, BLOCK_T=block_t,
            BLOCK_M=block_m, num_warps=num_warps)
        return dx, None, None, None, None, None, None


def lif_decoupled_triton(x: torch.Tensor, tau: float = 2.0, v_threshold: float = 1.0,
                         alpha: float = 2.0, detach_reset: bool = False, *,
                         return_membrane: bool = False, out_dtype: torch.dtype | None = None):
    """Spikes of the soft-reset LIF with decoupled reset for ``x`` ``[T, ...]``, from rest.

    ``β = 1 − 1/tau``. Same values and gradients as
    :class:`~spikeforge.golden.lif.DecoupledResetLIF` with ``ATan(alpha)``; with
    ``return_membrane`` also ``u_t = U'_t − V_th·A_t`` (its ``v_seq``, differentiable). ``out_dtype`` int8 or bool gives compact inference spikes (no gradient).
    """
    if x.dim() < 2:
        raise ValueError(f"x must be time-first [T, ...] of rank >= 2, got shape {tuple(x.shape)}")
    if not input_dtype_ok(x.dtype):
        raise ValueError(f"x must be float32, float16 or bfloat16, got {x.dtype}")
    if x.numel() == 0:
        raise ValueError(f"x must not be empty, got shape {tuple(x.shape)}")
    if not float(tau) > 1:
        raise ValueError(f"tau must be > 1 (beta = 1 - 1/tau in (0, 1)), got {tau}")
    alpha = check_alpha(alpha)
    out_dtype = check_spikes_request(out_dtype, (x,)) or x.dtype
    args = (x.contiguous(), 1.0 - 1.0 / float(tau), float(v_threshold), alpha, bool(detach_reset),
            out_dtype, bool(return_membrane))
    if not out_dtype.is_floating_point:
        with torch.no_grad():
            return _LIFSpikes.apply(*args)
    return _LIFSpikes.apply(*args)
