"""Fused CPSN kernels (docs/neurons.md §2): dilated depthwise causal conv + bias + Θ, and its
backward.

    H[t, n, c] = Σ_{i<k} W[c, i] · X[t − (k−1−i)·d, n, c] + b[c],     S = Θ(H)

``W`` is the *effective* weight (already ``Q(W)``), so the straight-through estimator stays in
torch and the kernels see plain numbers. Layout ``[T, M]`` with ``M = N·C`` (the contiguous
axis, so every tap load is coalesced) and channel ``m % C``. Three kernels:

- forward: a ``[BLOCK_T, BLOCK_M]`` tile per program, ``k`` shifted tile loads (the overlap hits
  L1/L2), fp32 accumulation, spikes stored in the output dtype (float for autograd, int8/bool
  for inference); the membrane is stored only when asked to (``save_membrane``).
- backward 1: ``G = ∂L/∂S · ATan'(H)`` with ``H`` recomputed (or loaded), written once as fp32,
  and the per-program partial sums of ``∂L/∂W[c, i] = Σ G[t]·X[t − (k−1−i)d]`` and
  ``∂L/∂b = Σ G`` over the program's time tiles; torch adds the partials once.
- backward 2: ``∂L/∂X[t] = Σ_i W[c, i]·G[t + (k−1−i)d]`` (flipped kernel, anti-causal).
"""

import torch
import triton
import triton.language as tl

from ._common import (atan_surrogate_grad, cdiv, check_alpha, check_spikes_request,
                      input_dtype_ok, pow2_clamp, target_programs)

__all__ = ["cpsn_spikes_triton"]


@triton.jit
def _membrane_tile(x_ptr, w_ptr, b_ptr, t, m, m_ok, c, T, M, dilation, K: tl.constexpr):
    """H on the tile ``t × m`` (fp32), causal zero padding for ``t − (k−1−i)d < 0``."""
    acc = tl.zeros([t.shape[0], m.shape[0]], tl.float32)
    acc += tl.load(b_ptr + c, mask=m_ok, other=0.0)[None, :]
    for i in tl.static_range(K):
        src = t - (K - 1 - i) * dilation
        ok = ((src >= 0) & (src < T))[:, None] & m_ok[None, :]
        xv = tl.load(x_ptr + src.to(tl.int64)[:, None] * M + m[None, :], mask=ok, other=0.0)
        acc += tl.load(w_ptr + c * K + i, mask=m_ok, other=0.0)[None, :] * xv.to(tl.float32)
    return acc


@triton.jit
def _cpsn_fwd_kernel(x_ptr, w_ptr, b_ptr, s_ptr, h_ptr, T, M, C, dilation,
                     K: tl.constexpr, STORE_H: tl.constexpr,
                     BLOCK_T: tl.constexpr, BLOCK_M: tl.constexpr):
    m = tl.program_id(0) * BLOCK_M + tl.arange(0, BLOCK_M)
    t = tl.program_id(1) * BLOCK_T + tl.arange(0, BLOCK_T)
    m_ok = m < M
    c = m % C
    h = _membrane_tile(x_ptr, w_ptr, b_ptr, t, m, m_ok, c, T, M, dilation, K)
    offs = t.to(tl.int64)[:, None] * M + m[None, :]
    ok = (t < T)[:, None] & m_ok[None, :]
    tl.store(s_ptr + offs, tl.where(h >= 0, 1.0, 0.0).to(s_ptr.dtype.element_ty), mask=ok)
    if STORE_H:
        tl.store(h_ptr + offs, h, mask=ok)


@triton.jit
def _cpsn_bwd_grad_h_kernel(x_ptr, w_ptr, b_ptr, h_ptr, gs_ptr, gh_ptr, pw_ptr, pb_ptr,
                            T, M, C, dilation, alpha, tiles_per_program, split,
                            K: tl.constexpr, K_PAD: tl.constexpr, SAVED_H: tl.constexpr,
                            BLOCK_T: tl.constexpr, BLOCK_M: tl.constexpr):
    pid_s = tl.program_id(1)
    m = tl.program_id(0) * BLOCK_M + tl.arange(0, BLOCK_M)
    m_ok = m < M
    c = m % C
    taps = tl.arange(0, K_PAD)
    acc_w = tl.zeros([K_PAD, BLOCK_M], tl.float32)
    acc_b = tl.zeros([BLOCK_M], tl.float32)
    for it in range(0, tiles_per_program):  # tiles pid_s, pid_s + split, ...; past T all masked
        t = (pid_s + it * split) * BLOCK_T + tl.arange(0, BLOCK_T)
        offs = t.to(tl.int64)[:, None] * M + m[None, :]
        ok = (t < T)[:, None] & m_ok[None, :]
        if SAVED_H:
            h = tl.load(h_ptr + offs, mask=ok, other=0.0)
        else:
            h = _membrane_tile(x_ptr, w_ptr, b_ptr, t, m, m_ok, c, T, M, dilation, K)
        g = tl.load(gs_ptr + offs, mask=ok, other=0.0).to(tl.float32)
        g *= atan_surrogate_grad(h, alpha)
        tl.store(gh_ptr + offs, g, mask=ok)
        acc_b += tl.sum(g, axis=0)
        for i in tl.static_range(K):
            src = t - (K - 1 - i) * dilation
            src_ok = ((src >= 0) & (src < T))[:, None] & m_ok[None, :]
            xv = tl.load(x_ptr + src.to(tl.int64)[:, None] * M + m[None, :], mask=src_ok, other=0.0)
            tap_sum = tl.sum(g * xv.to(tl.float32), axis=0)
            acc_w += tl.where(taps[:, None] == i, tap_sum[None, :], 0.0)
    part = pid_s.to(tl.int64) * M
    tl.store(pb_ptr + part + m, acc_b, mask=m_ok)
    tl.store(pw_ptr + part * K + taps[:, None] * M + m[None, :], acc_w,
             mask=(taps < K)[:, None] & m_ok[None, :])


@triton.jit
def _cpsn_bwd_grad_x_kernel(gh_ptr, w_ptr, dx_ptr, T, M, C, dilation,
                            K: tl.constexpr, BLOCK_T: tl.constexpr, BLOCK_M: tl.constexpr):
    m = tl.program_id(0) * BLOCK_M + tl.arange(0, BLOCK_M)
    t = tl.program_id(1) * BLOCK_T + tl.arange(0, BLOCK_T)
    m_ok = m < M
    c = m % C
    acc = tl.zeros([BLOCK_T, BLOCK_M], tl.float32)
    for i in tl.static_range(K):
        dst = t + (K - 1 - i) * dilation
        ok = (dst < T)[:, None] & m_ok[None, :]
        gv = tl.load(gh_ptr + dst.to(tl.int64)[:, None] * M + m[None, :], mask=ok, other=0.0)
        acc += tl.load(w_ptr + c * K + i, mask=m_ok, other=0.0)[None, :] * gv
    offs = t.to(tl.int64)[:, None] * M + m[None, :]
    tl.store(dx_ptr + offs, acc.to(dx_ptr.dtype.element_ty), mask=(t < T)[:, None] & m_ok[None, :])


def _blocks(T: int, M: int):
    return pow2_clamp(T, 8, 32), pow2_clamp(M, 16, 128)


def _forward(x, w, b, dilation, out_dtype, save_membrane):
    T, M = x.shape[0], x[0].numel()
    C, K = w.shape
    spikes = torch.empty(x.shape, dtype=out_dtype, device=x.device)
    h = torch.empty(x.shape, dtype=torch.float32, device=x.device) if save_membrane else None
    block_t, block_m = _blocks(T, M)
    grid = (cdiv(M, block_m), cdiv(T, block_t))
    s_arg = spikes.view(torch.int8) if out_dtype == torch.bool else spikes
    _cpsn_fwd_kernel[grid](x, w, b, s_arg, h if save_membrane else spikes, T, M, C, dilation,
                           K=K, STORE_H=save_membrane, BLOCK_T=block_t, BLOCK_M=block_m)
    return spikes, h


class _CPSNSpikes(torch.autograd.Function):
    @staticmethod
    def forward(ctx, x, weight, bias, dilation, alpha, save_membrane, out_dtype):
        w = weight.detach().float().contiguous()
        b = bias.detach().float().contiguous()
        spikes, h = _forward(x, w, b, dilation, out_dtype, save_membrane)
        ctx.save_for_backward(x, w, b, h)
        ctx.dilation, ctx.alpha, ctx.weight_dtype, ctx.bias_dtype = (
            dilation, alpha, weight.dtype, bias.dtype)
        return spikes

    @staticmethod
    def backward(ctx, grad_spikes):
        x, w, b, h = ctx.saved_tensors
        T, M = x.shape[0], x[0].numel()
        C, K = w.shape
        grad_spikes = grad_spikes.contiguous()
        block_t, block_m = _blocks(T, M)
        m_blocks, n_tiles = cdiv(M, block_m), cdiv(T, block_t)
        split = max(1, min(n_tiles, cdiv(target_programs(x.device), m_blocks)))
        gh = torch.empty(x.shape, dtype=torch.float32, device=x.device)
        pw = torch.empty((split, K, M), dtype=torch.float32, device=x.device)
        pb = torch.empty((split, M), dtype=torch.float32, device=x.device)
        _cpsn_bwd_grad_h_kernel[(m_blocks, split)](
            x, w, b, h if h is not None else gh, grad_spikes, gh, pw, pb, T, M, C, ctx.dilation,
            ctx.alpha, cdiv(n_tiles, split), split, K=K, K_PAD=triton.next_power_of_2(K),
            SAVED_H=h is not None, BLOCK_T=block_t, BLOCK_M=block_m)
        grad_x = None
        if ctx.needs_input_grad[0]:
            grad_x = torch.empty_like(x)
            _cpsn_bwd_grad_x_kernel[(m_blocks, n_tiles)](gh, w, grad_x, T, M, C, ctx.dilation, K=K,
                                                        BLOCK_T=block_t, BLOCK_M=block_m)
        grad_w = pw.view(split, K, M // C, C).sum((0, 2)).t().to(ctx.weight_dtype)
        grad_b = pb.view(split, M // C, C).sum((0, 1)).to(ctx.bias_dtype)
        return grad_x, grad_w, grad_b, None, None, None, None


def cpsn_spikes_triton(x: torch.Tensor, weight: torch.Tensor, bias: torch.Tensor,
                       dilation: int = 1, alpha: float = 2.0, *, save_membrane: bool = False,
                       out_dtype: torch.dtype | None = None) -> torch.Tensor:
    """CPSN spikes ``Θ(H)`` of ``x`` ``[T, N, C]``, effective weight ``[C, k]``, bias ``[C]``.

    Differentiable in ``x``, ``weight`` and ``bias`` with the ATan(``alpha``) surrogate, like
    ``ATan(alpha)(CPSN.membrane(x))``. ``save_membrane`` keeps ``H`` (fp32) for the backward
    instead of recomputing it. ``out_dtype`` int8 or bool gives compact inference spikes (no
    gradient); the default is ``x.dtype``.
    """
    if x.dim() != 3:
        raise ValueError(f"x must be [T, N, C], got shape {tuple(x.shape)}")
    if not input_dtype_ok(x.dtype):
        raise ValueError(f"x must be float32, float16 or bfloat16, got {x.dtype}")
    channels = x.shape[2]
    if weight.dim() != 2 or weight.shape[0] != channels or weight.shape[1] < 1:
        raise ValueError(f"weight must be [C={channels}, k], got shape {tuple(weight.shape)}")
    if tuple(bias.shape) != (channels,):
        raise ValueError(f"bias must be [C={channels}], got shape {tuple(bias.shape)}")
    if int(dilation) != dilation or dilation < 1:
        raise ValueError(f"dilation must be an integer >= 1, got {dilation}")
    alpha = check_alpha(alpha)
    if x.numel() == 0:
        raise ValueError(f"x must not be empty, got shape {tuple(x.shape)}")
    out_dtype = check_spikes_request(out_dtype, (x, weight, bias)) or x.dtype
    x = x.contiguous()
    if not out_dtype.is_floating_point:
        return _forward(x, weight.detach().float().contiguous(), bias.detach().float().contiguous(),
                        int(dilation), out_dtype, False)[0]
    return _CPSNSpikes.apply(x, weight, bias, int(dilation), alpha, bool(save_membrane), out_dtype)
