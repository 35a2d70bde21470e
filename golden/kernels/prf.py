"""Fused PRF kernels (docs/neurons.md §4): complex linear recurrence + Θ, and its reverse-scan
backward.

    ũ_t = λ·ũ_{t−1} + Δ·c_t,  λ = exp(Δ·(−1/τ + iθ)) = a + ib (per channel),  s_t = Θ(Re ũ_t − V_th)

Layout ``[T, M]``, ``M = N·C`` contiguous, channel ``m % C``. Two-level scan:

- Each program owns ``BLOCK_M`` neurons and one *chunk* of ``tiles_per_chunk`` time tiles of
  ``BLOCK_T`` steps. A tile is one wide ``[BLOCK_M, BLOCK_T]`` load; its steps are then walked in
  registers (the exact recurrence, one complex multiply-add per step), so memory latency is paid
  per tile, not per step.
- Many channels: one chunk (the whole sequence) per program, one pass over the input.
- Few channels × long T: ``n_chunks`` chunks run in parallel. A first pass leaves each chunk's
  end state from a zero start; the second pass starts chunk ``q`` from
  ``Σ_{k<q} λ^{L(q−1−k)}·end_k`` (one wide load of the ends and of a table of ``λ^{Ln}``
  computed in float64 by torch) and writes the outputs.

Backward, adjoint ``P_t = g_t + conj(λ)·P_{t+1}`` with ``g_t = ∂L/∂s_t·ATan'(Re ũ_t − V_th)
+ ∂L/∂v_t``, walked in reverse, chunked the same way (a first pass leaves each chunk's adjoint
at its start). Nothing but tile checkpoints is saved: the forward stores ``ũ`` at the end of every
tile (8 bytes per ``BLOCK_T`` steps per neuron) and the backward recomputes a tile's states from
its checkpoint before walking it backwards. Gradients:
``∂L/∂c_t = Δ·Re P_t``, ``∂L/∂Δ|_drive = Σ Re P_t·c_t``, and with
``Z = Σ conj(ũ_{t−1})·P_t = Σ (conj(ũ_t) − Δc_t)·P_t / conj(λ)``: ``∂L/∂a = Re Z``,
``∂L/∂b = Im Z``. Torch carries ``a, b`` back to ``log Δ`` and ``log θ``.
"""

import torch
import triton
import triton.language as tl

from ._common import (cdiv, check_alpha, check_spikes_request, input_dtype_ok, pow2_clamp,
                      target_programs)

__all__ = ["prf_triton"]

MAX_CHUNKS = 128
_CARRY_BLOCK = tl.constexpr(32)


@triton.jit
def _carry_in(src_ptr, pow_re_ptr, pow_im_ptr, m, m_ok, c, M, C, first, count, conj_sign,
              BLOCK_M: tl.constexpr):
    """``Σ_{j<count} λ'^{L·j} · src[first ± j]`` where ``λ'`` is λ (``conj_sign`` 1, forward:
    ``src[q−1−j]``) or conj λ (``conj_sign`` −1, backward: ``src[q+1+j]``)."""
    cols = tl.arange(0, _CARRY_BLOCK)
    acc_re = tl.zeros([BLOCK_M], tl.float32)
    acc_im = tl.zeros([BLOCK_M], tl.float32)
    for j0 in range(0, count, _CARRY_BLOCK):
        j = j0 + cols
        ok = m_ok[:, None] & (j < count)[None, :]
        k = first - conj_sign * j  # forward: q−1−j, backward: q+1+j
        src = src_ptr + (k.to(tl.int64) * 2 * M)[None, :] + m[:, None]
        e_re = tl.load(src, mask=ok, other=0.0)
        e_im = tl.load(src + M, mask=ok, other=0.0)
        p_re = tl.load(pow_re_ptr + (j * C)[None, :] + c[:, None], mask=ok, other=0.0)
        p_im = conj_sign * tl.load(pow_im_ptr + (j * C)[None, :] + c[:, None], mask=ok, other=0.0)
        acc_re += tl.sum(p_re * e_re - p_im * e_im, axis=1)
        acc_im += tl.sum(p_re * e_im + p_im * e_re, axis=1)
    return acc_re, acc_im


@triton.jit
def _prf_fwd_kernel(x_ptr, a_ptr, b_ptr, d_ptr, pow_re_ptr, pow_im_ptr, ends_ptr,
                    s_ptr, v_ptr, ckpt_ptr, T, M, C, tiles_per_chunk, v_th,
                    ENDS_ONLY: tl.constexpr, CARRY: tl.constexpr, STORE_V: tl.constexpr,
                    BLOCK_T: tl.constexpr, BLOCK_M: tl.constexpr):
    q = tl.program_id(1)
    m = tl.program_id(0) * BLOCK_M + tl.arange(0, BLOCK_M)
    m_ok = m < M
    c = m % C
    col = tl.arange(0, BLOCK_T)
    a = tl.load(a_ptr + c, mask=m_ok, other=0.0)
    b = tl.load(b_ptr + c, mask=m_ok, other=0.0)
    delta = tl.load(d_ptr + c, mask=m_ok, other=0.0)
    if CARRY:
        u_re, u_im = _carry_in(ends_ptr, pow_re_ptr, pow_im_ptr, m, m_ok, c, M, C, q - 1, q, 1,
                               BLOCK_M)
    else:
        u_re = tl.zeros([BLOCK_M], tl.float32)
        u_im = tl.zeros([BLOCK_M], tl.float32)
    n_tiles = tl.cdiv(T, BLOCK_T)
    for it in range(0, tiles_per_chunk):
        tile = q * tiles_per_chunk + it
        t = tile * BLOCK_T + col
        xt = tl.load(x_ptr + t.to(tl.int64)[None, :] * M + m[:, None],
                     mask=m_ok[:, None] & (t < T)[None, :], other=0.0).to(tl.float32)
        for j in tl.static_range(BLOCK_T):
            drive = delta * tl.sum(tl.where(col[None, :] == j, xt, 0.0), axis=1)
            u_re, u_im = a * u_re - b * u_im + drive, b * u_re + a * u_im
            if not ENDS_ONLY:
                row = tile * BLOCK_T + j
                ok = m_ok & (m * 0 + row < T)  # a vector mask (the interpreter refuses a scalar)
                offs = row.to(tl.int64) * M + m
                spike = tl.where(u_re - v_th >= 0, 1.0, 0.0)
                tl.store(s_ptr + offs, spike.to(s_ptr.dtype.element_ty), mask=ok)
                if STORE_V:
                    tl.store(v_ptr + offs, u_re.to(v_ptr.dtype.element_ty), mask=ok)
        if not ENDS_ONLY:
            ck = ckpt_ptr + tile.to(tl.int64) * 2 * M + m
            ck_ok = m_ok & (m * 0 + tile < n_tiles)
            tl.store(ck, u_re, mask=ck_ok)
            tl.store(ck + M, u_im, mask=ck_ok)
    if ENDS_ONLY:
        end = ends_ptr + q.to(tl.int64) * 2 * M + m
        tl.store(end, u_re, mask=m_ok)
        tl.store(end + M, u_im, mask=m_ok)


@triton.jit
def _prf_bwd_kernel(x_ptr, a_ptr, b_ptr, d_ptr, pow_re_ptr, pow_im_ptr, starts_ptr, ckpt_ptr,
                    gs_ptr, gv_ptr, dx_ptr, part_ptr, T, M, C, tiles_per_chunk, n_chunks,
                    v_th, alpha,
                    STARTS_ONLY: tl.constexpr, CARRY: tl.constexpr, HAS_GV: tl.constexpr,
                    BLOCK_T: tl.constexpr, BLOCK_M: tl.constexpr):
    q = tl.program_id(1)
    m = tl.program_id(0) * BLOCK_M + tl.arange(0, BLOCK_M)
    m_ok = m < M
    c = m % C
    col = tl.arange(0, BLOCK_T)
    a = tl.load(a_ptr + c, mask=m_ok, other=0.0)
    b = tl.load(b_ptr + c, mask=m_ok, other=0.0)
    delta = tl.load(d_ptr + c, mask=m_ok, other=0.0)
    if CARRY:
        p_re, p_im = _carry_in(starts_ptr, pow_re_ptr, pow_im_ptr, m, m_ok, c, M, C, q + 1,
                               n_chunks - 1 - q, -1, BLOCK_M)
    else:
        p_re = tl.zeros([BLOCK_M], tl.float32)
        p_im = tl.zeros([BLOCK_M], tl.float32)
    acc_x = tl.zeros([BLOCK_M], tl.float32)
    acc_wr = tl.zeros([BLOCK_M], tl.float32)
    acc_wi = tl.zeros([BLOCK_M], tl.float32)
    for it in range(0, tiles_per_chunk):
        tile = q * tiles_per_chunk + (tiles_per_chunk - 1 - it)
        t = tile * BLOCK_T + col
        offs = t.to(tl.int64)[None, :] * M + m[:, None]
        ok = m_ok[:, None] & (t < T)[None, :]
        xt = tl.load(x_ptr + offs, mask=ok, other=0.0).to(tl.float32)
        gs = tl.load(gs_ptr + offs, mask=ok, other=0.0).to(tl.float32)
        if HAS_GV:
            gv = tl.load(gv_ptr + offs, mask=ok, other=0.0).to(tl.float32)
        ck = ckpt_ptr + (tile - 1).to(tl.int64) * 2 * M + m
        ck_ok = m_ok & (m * 0 + tile > 0)
        u_re = tl.load(ck, mask=ck_ok, other=0.0)
        u_im = tl.load(ck + M, mask=ck_ok, other=0.0)
        re_tile = tl.zeros([BLOCK_M, BLOCK_T], tl.float32)
        im_tile = tl.zeros([BLOCK_M, BLOCK_T], tl.float32)
        for j in tl.static_range(BLOCK_T):  # recompute the tile's states from its checkpoint
            drive = delta * tl.sum(tl.where(col[None, :] == j, xt, 0.0), axis=1)
            u_re, u_im = a * u_re - b * u_im + drive, b * u_re + a * u_im
            re_tile = tl.where(col[None, :] == j, u_re[:, None], re_tile)
            im_tile = tl.where(col[None, :] == j, u_im[:, None], im_tile)
        for jj in tl.static_range(BLOCK_T):
            j = BLOCK_T - 1 - jj
            u_re = tl.sum(tl.where(col[None, :] == j, re_tile, 0.0), axis=1)
            u_im = tl.sum(tl.where(col[None, :] == j, im_tile, 0.0), axis=1)
            xj = tl.sum(tl.where(col[None, :] == j, xt, 0.0), axis=1)
            z = 1.5707963267948966 * alpha * (u_re - v_th)  # ATan' inline (see _common)
            g = tl.sum(tl.where(col[None, :] == j, gs, 0.0), axis=1) * (0.5 * alpha / (1.0 + z * z))
            if HAS_GV:
                g += tl.sum(tl.where(col[None, :] == j, gv, 0.0), axis=1)
            p_re, p_im = g + a * p_re + b * p_im, a * p_im - b * p_re
            if not STARTS_ONLY:
                row = tile * BLOCK_T + j
                tl.store(dx_ptr + row.to(tl.int64) * M + m,
                         (delta * p_re).to(dx_ptr.dtype.element_ty), mask=m_ok & (m * 0 + row < T))
                pre = u_re - delta * xj  # conj(ũ_t) − Δc_t = pre − i·u_im
                acc_x += p_re * xj
                acc_wr += pre * p_re + u_im * p_im
                acc_wi += pre * p_im - u_im * p_re
    if STARTS_ONLY:
        start = starts_ptr + q.to(tl.int64) * 2 * M + m
        tl.store(start, p_re, mask=m_ok)
        tl.store(start + M, p_im, mask=m_ok)
    else:
        part = part_ptr + q.to(tl.int64) * 3 * M + m
        tl.store(part, acc_x, mask=m_ok)
        tl.store(part + M, acc_wr, mask=m_ok)
        tl.store(part + 2 * M, acc_wi, mask=m_ok)


def _plan(T: int, M: int, device: torch.device, chunk_tiles: int | None):
    """Block sizes and the chunking: ``(BLOCK_T, BLOCK_M, tiles_per_chunk, n_chunks)``.

    One warp per 32 neurons (``num_warps = BLOCK_M // 32``), so that each thread holds one
    neuron's whole tile and walking its steps needs no cross-thread traffic.
    """
    block_t, block_m = 8, pow2_clamp(M, 32, 128)
    n_tiles = cdiv(T, block_t)
    if chunk_tiles is None:
        wanted = cdiv(target_programs(device), cdiv(M, block_m))
        chunk_tiles = cdiv(n_tiles, max(1, min(wanted, MAX_CHUNKS)))
    chunk_tiles = max(chunk_tiles, cdiv(n_tiles, MAX_CHUNKS))
    return block_t, block_m, chunk_tiles, cdiv(n_tiles, chunk_tiles)


def _powers(a, b, steps, n_chunks):
    """``λ^{steps·n}`` for ``n < n_chunks`` per channel, in float64: ``([n, C], [n, C])`` fp32."""
    lam_steps = torch.complex(a.double(), b.double()) ** steps
    powers = torch.arange(n_chunks, device=a.device, dtype=torch.float64)[:, None]
    table = lam_steps[None, :] ** powers
    return table.real.float().contiguous(), table.imag.float().contiguous()


class _PRFSpikes(torch.autograd.Function):
    @staticmethod
    def forward(ctx, x, a, b, delta, v_th, alpha, out_dtype, store_v, chunk_tiles):
        T, M = x.shape[0], x[0].numel()
        C = x.shape[-1]
        a, b, delta = (p.detach().float().contiguous() for p in (a, b, delta))
        block_t, block_m, tiles_per_chunk, n_chunks = _plan(T, M, x.device, chunk_tiles)
        grid = (cdiv(M, block_m), n_chunks)
        spikes = torch.empty(x.shape, dtype=out_dtype, device=x.device)
        v = torch.empty_like(x) if store_v else None
        ckpt = torch.empty((cdiv(T, block_t), 2, M), dtype=torch.float32, device=x.device)
        pow_re, pow_im = _powers(a, b, tiles_per_chunk * block_t, n_chunks)
        ends = torch.empty((n_chunks, 2, M), dtype=torch.float32, device=x.device)
        s_arg = spikes.view(torch.int8) if out_dtype == torch.bool else spikes
        common = dict(BLOCK_T=block_t, BLOCK_M=block_m, num_warps=block_m // 32)
        if n_chunks > 1:
            _prf_fwd_kernel[grid](x, a, b, delta, pow_re, pow_im, ends, s_arg, x, ckpt, T, M, C,
                                  tiles_per_chunk, v_th, ENDS_ONLY=True, CARRY=False,
                                  STORE_V=False, **common)
        _prf_fwd_kernel[grid](x, a, b, delta, pow_re, pow_im, ends, s_arg,
                              v if store_v else x, ckpt, T, M, C, tiles_per_chunk, v_th,
                              ENDS_ONLY=False, CARRY=n_chunks > 1, STORE_V=store_v, **common)
        ctx.save_for_backward(x, a, b, delta, ckpt, pow_re, pow_im)
        ctx.plan = (block_t, block_m, tiles_per_chunk, n_chunks)
        ctx.v_th, ctx.alpha = v_th, alpha
        ctx.set_materialize_grads(False)
        return spikes if v is None else (spikes, v)

    @staticmethod
    def backward(ctx, grad_spikes, grad_v=None):
        x, a, b, delta, ckpt, pow_re, pow_im = ctx.saved_tensors
        block_t, block_m, tiles_per_chunk, n_chunks = ctx.plan
        T, M = x.shape[0], x[0].numel()
        C = x.shape[-1]
        grid = (cdiv(M, block_m), n_chunks)
        grad_spikes = torch.zeros_like(x) if grad_spikes is None else grad_spikes.contiguous()
        has_gv = grad_v is not None
        gv = grad_v.contiguous() if has_gv else grad_spikes
        dx = torch.empty_like(x)
        part = torch.empty((n_chunks, 3, M), dtype=torch.float32, device=x.device)
        starts = torch.empty((n_chunks, 2, M), dtype=torch.float32, device=x.device)
        args = (x, a, b, delta, pow_re, pow_im, starts, ckpt, grad_spikes, gv, dx, part, T, M, C,
                tiles_per_chunk, n_chunks, ctx.v_th, ctx.alpha)
        common = dict(HAS_GV=has_gv, BLOCK_T=block_t, BLOCK_M=block_m, num_warps=block_m // 32)
        if n_chunks > 1:
            _prf_bwd_kernel[grid](*args, STARTS_ONLY=True, CARRY=False, **common)
        _prf_bwd_kernel[grid](*args, STARTS_ONLY=False, CARRY=n_chunks > 1, **common)
        sums = part.view(n_chunks, 3, M // C, C).sum((0, 2))
        z = torch.complex(sums[1], sums[2]) / torch.complex(a, -b)
        return dx, z.real, z.imag, sums[0], None, None, None, None, None


def prf_triton(x: torch.Tensor, log_delta: torch.Tensor, log_theta: torch.Tensor,
               tau: float = 2.0, v_threshold: float = 1.0, alpha: float = 2.0, *,
               return_membrane: bool = False, out_dtype: torch.dtype | None = None,
               chunk_tiles: int | None = None):
    """PRF spikes of ``x`` ``[T, N, C]`` (and ``Re ũ`` with ``return_membrane``), from rest.

    Per-channel ``log_delta``, ``log_theta`` ``[C]``; differentiable in ``x``, ``log_delta``,
    ``log_theta`` with the ATan(``alpha``) surrogate of ``Re ũ − v_threshold``, and through the
    returned membrane. ``out_dtype`` int8 or bool gives compact inference spikes (no gradient).
    ``chunk_tiles`` overrides the time-chunk length (in tiles of 8 steps) of the two-level scan.
    """
    if x.dim() != 3:
        raise ValueError(f"x must be [T, N, C], got shape {tuple(x.shape)}")
    if not input_dtype_ok(x.dtype):
        raise ValueError(f"x must be float32, float16 or bfloat16, got {x.dtype}")
    if x.numel() == 0:
        raise ValueError(f"x must not be empty, got shape {tuple(x.shape)}")
    channels = x.shape[2]
    for name, p in (("log_delta", log_delta), ("log_theta", log_theta)):
        if tuple(p.shape) != (channels,):
            raise ValueError(f"{name} must be [C={channels}], got shape {tuple(p.shape)}")
    if not float(tau) > 0:
        raise ValueError(f"tau must be > 0, got {tau}")
    if chunk_tiles is not None and (int(chunk_tiles) != chunk_tiles or chunk_tiles < 1):
        raise ValueError(f"chunk_tiles must be a positive integer, got {chunk_tiles}")
    alpha = check_alpha(alpha)
    out_dtype = check_spikes_request(out_dtype, (x, log_delta, log_theta)) or x.dtype
    delta = log_delta.float().exp()
    angle = delta * log_theta.float().exp()
    magnitude = torch.exp(-delta / float(tau))
    a, b = magnitude * torch.cos(angle), magnitude * torch.sin(angle)
    args = (x.contiguous(), a, b, delta, float(v_threshold), alpha, out_dtype,
            bool(return_membrane), chunk_tiles)
    if not out_dtype.is_floating_point:
        with torch.no_grad():
            return _PRFSpikes.apply(*args)
    return _PRFSpikes.apply(*args)
