"""Fused Triton kernels (golden/kernels) against the torch references: values and gradients.

Without a GPU the kernels run in Triton's interpreter on CPU tensors; ``TRITON_INTERPRET`` must
be set before the kernel modules are imported (Triton picks compiled or interpreted at
``@triton.jit`` time), so it is set here, at the top. With a GPU (and ``TRITON_INTERPRET``
unset) the same tests run the compiled kernels on CUDA tensors.
"""

import inspect
import json
import math
import os
import subprocess
import sys
import textwrap

import pytest
import torch
import torch.nn.functional as F

ON_GPU = torch.cuda.is_available() and os.environ.get("TRITON_INTERPRET", "0") != "1"
if not ON_GPU:
    os.environ["TRITON_INTERPRET"] = "1"

pytest.importorskip("triton")

from spikeforge.golden.cpsn import CPSN, quantize_power_of_two  # noqa: E402
from spikeforge.golden.kernels import (cpsn_spikes_triton, lif_decoupled_triton,  # noqa: E402
                                       lif_multi_step, prf_multi_step, prf_triton,
                                       triton_available, use_triton)
from spikeforge.golden.lif import LIF, DecoupledResetLIF  # noqa: E402
from spikeforge.golden.prf import PRF, prf_membrane  # noqa: E402
from spikeforge.golden.surrogate import ATan, Sigmoid  # noqa: E402

DEVICE = "cuda" if ON_GPU else "cpu"
# Kernel error budgets: inputs of every dtype are exact in fp32, the kernels accumulate in fp32,
# so only the fp32 rounding of H and the rounding of low-precision *outputs* remain.
THRESHOLD_TOL = 1e-4  # spikes are compared only where |H| exceeds this
GRAD_TOL = {torch.float32: 2e-5, torch.bfloat16: 1e-2, torch.float16: 2e-3}


def assert_close_scaled(got, want, rel, what):
    """|got − want| <= rel · max|want| elementwise (gradients live on very different scales)."""
    got, want = got.double().cpu(), want.double().cpu()
    scale = want.abs().max().clamp_min(1e-12)
    err = (got - want).abs().max()
    assert err <= rel * scale, f"{what}: max error {err:.3g} > {rel:g} · {scale:.3g}"


def assert_spikes_match(spikes, reference, margin, what, min_fraction=0.9):
    """Spikes equal where the reference membrane clears the threshold by more than rounding."""
    safe = margin.abs().cpu() > THRESHOLD_TOL
    assert safe.double().mean() >= min_fraction, f"{what}: too few spikes away from threshold"
    got, want = spikes.double().cpu()[safe], reference.double().cpu()[safe]
    assert torch.equal(got, want), f"{what}: {int((got != want).sum())} spikes differ"


# ----------------------------------------------------------------------------------------- CPSN

def cpsn_reference(x, weight, bias, dilation, alpha):
    """float64 torch CPSN (the module's conv1d path) and its membrane H."""
    steps, _, channels = x.shape
    order = weight.shape[1]
    seq = F.pad(x.permute(1, 2, 0), ((order - 1) * dilation, 0))
    h = F.conv1d(seq, weight.unsqueeze(1), bias, dilation=dilation, groups=channels)
    h = h.permute(2, 0, 1)
    return ATan(alpha)(h), h


@pytest.mark.parametrize("steps,batch,channels,order,dilation,dtype,save", [
    (37, 3, 5, 3, 2, torch.float32, False),    # T not a multiple of the 32-step tile
    (6, 1, 1, 4, 3, torch.float32, True),      # k·d > T, one channel, batch 1, saved membrane
    (70, 2, 70, 2, 1, torch.float32, False),   # two neuron blocks, three time tiles
    (33, 2, 9, 5, 1, torch.bfloat16, False),
    (20, 1, 4, 3, 7, torch.float16, True),
])
def test_cpsn_kernel_matches_torch(steps, batch, channels, order, dilation, dtype, save, seed):
    torch.manual_seed(seed)
    alpha = 1.5
    weight = quantize_power_of_two(torch.randn(channels, order, dtype=torch.float64) * 0.7,
                                   -4, 0).requires_grad_()
    bias = (-0.5 * torch.rand(channels, dtype=torch.float64)).requires_grad_()
    x = torch.randn(steps, batch, channels).to(dtype)
    x64 = x.double().requires_grad_()
    spikes_ref, h = cpsn_reference(x64, weight, bias, dilation, alpha)
    grad_out = torch.randn(spikes_ref.shape, dtype=torch.float64)
    want = torch.autograd.grad(spikes_ref, (x64, weight, bias), grad_out)

    xk = x.to(DEVICE).requires_grad_()
    wk = weight.detach().float().to(DEVICE).requires_grad_()
    bk = bias.detach().float().to(DEVICE).requires_grad_()
    spikes = cpsn_spikes_triton(xk, wk, bk, dilation, alpha, save_membrane=save)
    assert spikes.dtype == dtype and spikes.shape == x.shape
    assert_spikes_match(spikes, spikes_ref, h, "CPSN spikes")
    got = torch.autograd.grad(spikes, (xk, wk, bk), grad_out.to(dtype).to(DEVICE))
    assert got[0].dtype == dtype
    for name, g, w in zip(("x", "weight", "bias"), got, want):
        assert_close_scaled(g, w, GRAD_TOL[dtype], f"CPSN grad {name}")


def test_cpsn_compact_spikes_for_inference(seed):
    torch.manual_seed(seed)
    x = torch.randn(19, 2, 3, device=DEVICE)
    weight, bias = torch.randn(3, 2, device=DEVICE), torch.zeros(3, device=DEVICE)
    spikes = cpsn_spikes_triton(x, weight, bias, 2)
    for dtype in (torch.int8, torch.bool):
        compact = cpsn_spikes_triton(x, weight, bias, 2, out_dtype=dtype)
        assert compact.dtype == dtype and torch.equal(compact.float(), spikes)
    with pytest.raises(ValueError, match="no gradient"):
        cpsn_spikes_triton(x.requires_grad_(), weight, bias, 2, out_dtype=torch.int8)


def test_cpsn_kernel_rejects_bad_arguments():
    x = torch.randn(5, 2, 3, device=DEVICE)
    weight, bias = torch.ones(3, 2, device=DEVICE), torch.zeros(3, device=DEVICE)
    with pytest.raises(ValueError, match=r"\[T, N, C\]"):
        cpsn_spikes_triton(x[0], weight, bias)
    with pytest.raises(ValueError, match="weight"):
        cpsn_spikes_triton(x, weight[:2], bias)
    with pytest.raises(ValueError, match="dilation"):
        cpsn_spikes_triton(x, weight, bias, 0)
    with pytest.raises(ValueError, match="alpha"):
        cpsn_spikes_triton(x, weight, bias, 1, -1.0)
    with pytest.raises(ValueError, match="float32"):
        cpsn_spikes_triton(x.double(), weight, bias)


def test_cpsn_module_triton_backend_equals_torch_backend(seed):
    torch.manual_seed(seed)
    modules = {b: CPSN(6, 3, 2, backend=b).to(DEVICE) for b in ("torch", "triton")}
    with torch.no_grad():
        modules["torch"].weight.normal_(0, 0.6)
        modules["torch"].bias.uniform_(-1, 0)
    modules["triton"].load_state_dict(modules["torch"].state_dict())
    x = torch.randn(21, 2, 3, 6, device=DEVICE)  # extra spatial dim folds into N
    grad_out = torch.randn_like(x)
    results = {}
    for backend, module in modules.items():
        xb = x.clone().requires_grad_()
        spikes = module(xb)
        grads = torch.autograd.grad(spikes, (xb, module.weight, module.bias), grad_out)
        results[backend] = (spikes, grads)
    h = modules["torch"].membrane(x).detach()
    assert_spikes_match(results["triton"][0], results["torch"][0], h, "module spikes")
    for name, g, w in zip(("x", "weight", "bias"), results["triton"][1], results["torch"][1]):
        assert_close_scaled(g, w, 1e-5, f"module grad {name}")  # weight: through the STE


def test_cpsn_module_backend_selection():
    x = torch.randn(4, 2, 3)
    assert not CPSN(3, 2, backend="auto")._use_triton(x)  # CPU tensor: torch
    assert CPSN(3, 2, backend="triton")._use_triton(x.to(DEVICE))
    assert not CPSN(3, 2, backend="auto", surrogate_function=Sigmoid())._use_triton(x.to(DEVICE))
    with pytest.raises(ValueError, match="ATan"):
        CPSN(3, 2, backend="triton", surrogate_function=Sigmoid())(x)
    with pytest.raises(ValueError, match="backend"):
        CPSN(3, 2, backend="cuda")


def test_backend_resolution(monkeypatch):
    x = torch.zeros(2, 2)
    assert triton_available()
    assert not use_triton("torch", x)
    assert use_triton("auto", x) == x.is_cuda
    with pytest.raises(ValueError, match="backend"):
        use_triton("fast", x)
    monkeypatch.setenv("TRITON_INTERPRET", "0")
    with pytest.raises(RuntimeError, match="CUDA"):
        use_triton("triton", x)  # a CPU tensor and no interpreter


# ------------------------------------------------------------------------------------------ LIF

def stable_neurons(h, what):
    """Neurons whose membrane never comes within rounding of the threshold.

    A spike flipped by rounding changes the dynamic threshold of every later step, so a neuron
    is compared whole or not at all.
    """
    keep = (h.abs() > THRESHOLD_TOL).all(dim=0)
    assert keep.double().mean() >= 0.9, f"{what}: too many neurons near the threshold"
    return keep


@pytest.mark.parametrize("steps,batch,channels,dtype,detach_reset", [
    (37, 3, 5, torch.float32, False),   # T not a multiple of the tile
    (37, 3, 5, torch.float32, True),
    (5, 1, 1, torch.float32, False),    # one neuron, T shorter than a tile
    (45, 2, 70, torch.float32, False),  # two neuron blocks
    (29, 2, 6, torch.bfloat16, False),
    (24, 1, 7, torch.float16, True),
])
def test_lif_kernel_matches_decoupled_reset_lif(steps, batch, channels, dtype, detach_reset,
                                                 seed):
    torch.manual_seed(seed)
    tau, v_th, alpha = 2.5, 1.0, 2.0
    x = (torch.randn(steps, batch, channels) * 1.5 + 0.6).to(dtype)
    module = DecoupledResetLIF(tau, v_th, ATan(alpha), detach_reset, store_v_seq=True)
    x64 = x.double().requires_grad_()
    spikes_ref = module(x64)
    v_ref = module.v_seq
    grad_s, grad_v = torch.randn_like(spikes_ref), torch.randn_like(spikes_ref)
    want = torch.autograd.grad((spikes_ref * grad_s).sum() + (v_ref * grad_v).sum(), x64)[0]

    xk = x.to(DEVICE).requires_grad_()
    spikes, v = lif_decoupled_triton(xk, tau, v_th, alpha, detach_reset, return_membrane=True)
    assert spikes.dtype == dtype and v.dtype == dtype
    keep = stable_neurons(v_ref.detach() - v_th, "LIF")
    assert torch.equal(spikes.double().cpu()[:, keep], spikes_ref.detach()[:, keep])
    assert_close_scaled(v.cpu()[:, keep], v_ref.detach()[:, keep], GRAD_TOL[dtype], "LIF v")
    loss = (spikes * grad_s.to(dtype).to(DEVICE)).sum() + (v * grad_v.to(dtype).to(DEVICE)).sum()
    got = torch.autograd.grad(loss, xk)[0]
    assert_close_scaled(got.cpu()[:, keep], want[:, keep], GRAD_TOL[dtype], "LIF grad x")


def test_lif_spikes_only_gradient_and_compact_output(seed):
    torch.manual_seed(seed)
    x = (torch.randn(26, 2, 3, dtype=torch.float64) + 0.5).requires_grad_()
    module = DecoupledResetLIF(2.0, 1.0, store_v_seq=True)
    spikes_ref = module(x)
    grad_s = torch.randn_like(spikes_ref)
    want = torch.autograd.grad(spikes_ref, x, grad_s)[0]
    xk = x.detach().float().to(DEVICE).requires_grad_()
    spikes = lif_decoupled_triton(xk)
    keep = stable_neurons(module.v_seq.detach() - 1.0, "LIF")
    got = torch.autograd.grad(spikes, xk, grad_s.float().to(DEVICE))[0]
    assert_close_scaled(got.cpu()[:, keep], want[:, keep], GRAD_TOL[torch.float32], "LIF grad")
    with torch.no_grad():
        compact = lif_decoupled_triton(xk, out_dtype=torch.int8)
    assert compact.dtype == torch.int8 and torch.equal(compact.float(), spikes.detach())
    with pytest.raises(ValueError, match="tau"):
        lif_decoupled_triton(xk, tau=1.0)


def test_lif_kernel_does_not_lose_spikes_to_cancellation_at_large_tau():
    """τ = 300, T = 2048, 97 % firing: ``U'`` and ``V_th·A`` grow to ~300 while ``u`` stays
    near V_th. The kernel carries the membrane after its reset and flips no spike against the
    float64 LIF loop; the same float32 pass carrying ``(U', A)`` (the control) flips 24."""
    tau, steps, neurons = 300.0, 2048, 256
    x = torch.randn(steps, neurons, generator=torch.Generator().manual_seed(0)) * 0.5 + 1.0
    reference = LIF(tau, 1.0)(x.double()).detach()
    beta = torch.tensor(1 - 1 / tau)
    u, trace, control = torch.zeros(neurons), torch.zeros(neurons), []
    for c in x:
        u = beta * u + c
        control.append((u - (trace + 1.0) >= 0).float())
        trace = beta * (trace + control[-1])
    assert (torch.stack(control).double() != reference).sum() > 0, "the control lost its point"
    with torch.no_grad():
        spikes = lif_decoupled_triton(x.to(DEVICE), tau, 1.0).cpu()
    assert torch.equal(spikes.double(), reference)


@pytest.mark.parametrize("base", [DecoupledResetLIF, LIF])
def test_lif_modules_one_line_integration(base, seed):
    """The integration proposed for golden/lif.py, on subclasses: same spikes, v_seq, gradients."""
    class KernelLIF(base):
        backends = ("torch", "triton")
        _multi_step_triton = lif_multi_step

    torch.manual_seed(seed)
    x = torch.randn(23, 2, 3, 4) + 0.7
    reference = base(2.0, 1.0, detach_reset=True, store_v_seq=True)
    kernel = KernelLIF(2.0, 1.0, detach_reset=True, store_v_seq=True, backend="triton")
    results = []
    for module, device in ((reference, "cpu"), (kernel, DEVICE)):
        xb = x.to(device).requires_grad_()
        spikes = module(xb)
        grad = torch.autograd.grad(spikes.sum() + module.v_seq.square().sum(), xb)[0]
        results.append((spikes.cpu(), module.v_seq.detach().cpu(), grad.cpu()))
    keep = stable_neurons((results[0][1] - 1.0).flatten(1), "LIF module")
    for got, want, what in zip(results[1], results[0], ("spikes", "v_seq", "grad")):
        assert_close_scaled(got.flatten(1)[:, keep], want.flatten(1)[:, keep], 1e-5, what)
    kernel.surrogate_function = Sigmoid()
    with pytest.raises(ValueError, match="ATan"):
        kernel(x.to(DEVICE))
    kernel.backend = "auto"  # another surrogate under auto: the adapter takes the torch path
    assert torch.equal(lif_multi_step(kernel, x)[0], base(2.0, 1.0, Sigmoid(), True)(x))


# ------------------------------------------------------------------------------------------ PRF

@pytest.mark.parametrize("steps,batch,channels,dtype,chunk_tiles", [
    (37, 3, 5, torch.float32, None),   # one chunk, T not a multiple of the tile
    (100, 1, 2, torch.float32, 2),     # few channels: 7 chunks, carries across chunks
    (64, 2, 3, torch.float32, 1),      # one tile per chunk, T a multiple of the tile
    (5, 1, 1, torch.float32, None),    # one neuron, T shorter than a tile
    (40, 2, 70, torch.float32, None),  # two neuron blocks
    (45, 2, 4, torch.bfloat16, 3),
    (30, 1, 3, torch.float16, None),
])
def test_prf_kernel_matches_recurrence(steps, batch, channels, dtype, chunk_tiles, seed):
    torch.manual_seed(seed)
    tau, v_th, alpha = 2.0, 1.0, 2.0
    x = (torch.randn(steps, batch, channels) * 4 + 2).to(dtype)
    log_delta = torch.empty(channels, dtype=torch.float64).uniform_(math.log(0.05), 0.0)
    log_theta = torch.log(2 * math.pi * torch.rand(channels, dtype=torch.float64) + 0.1)
    x64 = x.double().requires_grad_()
    params = (log_delta.requires_grad_(), log_theta.requires_grad_())
    v_ref = prf_membrane(x64, params[0].exp(), params[1].exp(), tau, "recurrence").real
    spikes_ref = ATan(alpha)(v_ref - v_th)
    grad_s, grad_v = torch.randn_like(v_ref), torch.randn_like(v_ref)
    want = torch.autograd.grad((spikes_ref * grad_s).sum() + (v_ref * grad_v).sum(),
                               (x64, *params))

    xk = x.to(DEVICE).requires_grad_()
    kparams = [p.detach().float().to(DEVICE).requires_grad_() for p in params]
    spikes, v = prf_triton(xk, *kparams, tau, v_th, alpha, return_membrane=True,
                           chunk_tiles=chunk_tiles)
    assert spikes.dtype == dtype and v.dtype == dtype
    assert_spikes_match(spikes, spikes_ref.detach(), v_ref.detach() - v_th, "PRF spikes")
    assert_close_scaled(v, v_ref.detach(), GRAD_TOL[dtype], "PRF membrane")
    loss = (spikes * grad_s.to(dtype).to(DEVICE)).sum() + (v * grad_v.to(dtype).to(DEVICE)).sum()
    got = torch.autograd.grad(loss, (xk, *kparams))
    # log Δ, log θ sum T·N terms, each from a low-precision upstream gradient
    param_tol = {torch.float32: 1e-4}.get(dtype, 3e-2)
    for name, g, w, tol in zip(("x", "log_delta", "log_theta"), got, want,
                               (GRAD_TOL[dtype], param_tol, param_tol)):
        assert_close_scaled(g, w, tol, f"PRF grad {name}")


def test_prf_spikes_only_and_compact_output(seed):
    torch.manual_seed(seed)
    channels = 4
    x = torch.randn(27, 2, channels, device=DEVICE) * 3 + 2
    log_delta = torch.full((channels,), math.log(0.3), device=DEVICE, requires_grad=True)
    log_theta = torch.zeros(channels, device=DEVICE, requires_grad=True)
    spikes = prf_triton(x, log_delta, log_theta)
    spikes.sum().backward()  # the membrane output unused: its gradient is None
    assert log_delta.grad is not None and torch.isfinite(log_delta.grad).all()
    with torch.no_grad():
        compact = prf_triton(x, log_delta, log_theta, out_dtype=torch.bool)
    assert compact.dtype == torch.bool and torch.equal(compact.float(), spikes.detach())
    with pytest.raises(ValueError, match="log_theta"):
        prf_triton(x, log_delta, log_theta[:2])


def test_prf_module_adapter_matches_module(seed):
    torch.manual_seed(seed)
    module = PRF(5, mode="recurrence", delta_min=0.05, delta_max=0.5)
    x = torch.randn(31, 2, 3, 5) * 4 + 2
    spikes_ref, v_ref = module(x, return_membrane=True)
    want = torch.autograd.grad(spikes_ref.sum() + v_ref.sum(), module.neuron_parameters())
    spikes, v = prf_multi_step(module.to(DEVICE), x.to(DEVICE), return_membrane=True)
    assert spikes.shape == x.shape and v.shape == x.shape
    assert_spikes_match(spikes, spikes_ref.detach(), v_ref.detach() - 1.0, "PRF module spikes")
    got = torch.autograd.grad(spikes.sum() + v.sum(), module.neuron_parameters())
    for g, w in zip(got, want):
        assert_close_scaled(g, w, 1e-4, "PRF module parameter grads")
    assert prf_multi_step(module, x.to(DEVICE))[1] is None


# ------------------------------------------------------------------------------ GPU compilation

_COMPILE_CHECK = textwrap.dedent("""
    import inspect, os, triton
    from triton.backends.compiler import GPUTarget
    from triton.compiler import ASTSource
    from spikeforge.golden.kernels import cpsn, lif, prf
    FLOATS = {"alpha", "beta", "v_th"}
    def check(fn, **consts):
        sig = {}
        for name in inspect.signature(fn.fn).parameters:
            if name in consts:
                sig[name] = "constexpr"
            elif name.endswith("_ptr"):
                sig[name] = "*bf16" if name in ("x_ptr", "gs_ptr", "dx_ptr") else "*fp32"
            else:
                sig[name] = "fp32" if name in FLOATS else "i32"
        triton.compile(ASTSource(fn, sig, constexprs=consts), target=GPUTarget("cuda", 90, 32),
                       options={"num_warps": 4})
    check(cpsn._cpsn_fwd_kernel, K=3, STORE_H=True, BLOCK_T=32, BLOCK_M=128)
    check(cpsn._cpsn_bwd_grad_h_kernel, K=3, K_PAD=4, SAVED_H=False, BLOCK_T=32, BLOCK_M=128)
    check(cpsn._cpsn_bwd_grad_x_kernel, K=3, BLOCK_T=32, BLOCK_M=128)
    check(lif._lif_fwd_kernel, STORE_V=True, BLOCK_T=8, BLOCK_M=128)
    check(lif._lif_bwd_kernel, DETACH_RESET=False, HAS_GV=True, BLOCK_T=16, BLOCK_M=128)
    check(prf._prf_fwd_kernel, ENDS_ONLY=False, CARRY=True, STORE_V=True, BLOCK_T=8,
          BLOCK_M=128)
    check(prf._prf_bwd_kernel, STARTS_ONLY=False, CARRY=True, HAS_GV=True, BLOCK_T=8,
          BLOCK_M=128)
    print("compiled")
""")


def test_kernels_compile_for_sm90():
    """The interpreter does not run Triton's compiler; this lowers every kernel to PTX for H100."""
    import triton.backends
    if "nvidia" not in triton.backends.backends:
        pytest.skip("this Triton build has no NVIDIA backend")
    env = {k: v for k, v in os.environ.items() if k != "TRITON_INTERPRET"}
    env["TRITON_DEFAULT_FP_FUSION"] = "1"
    result = subprocess.run([sys.executable, "-c", _COMPILE_CHECK], env=env, capture_output=True,
                            text=True, timeout=300)
    assert result.returncode == 0 and "compiled" in result.stdout, result.stderr[-3000:]


def test_compile_check_covers_every_kernel():
    from spikeforge.golden.kernels import cpsn, lif, prf
    kernels = {f"{m.__name__.rsplit('.', 1)[1]}.{name}" for m in (cpsn, lif, prf)
               for name, obj in inspect.getmembers(m) if name.endswith("_kernel")}
    checked = {line.split("(")[1].split(",")[0] for line in _COMPILE_CHECK.splitlines()
               if line.startswith("check(")}
    assert kernels == checked


# ---------------------------------------------------------------------------------- benchmark

def test_peak_bandwidth_lookup():
    from spikeforge.sw.bench_kernels import peak_bandwidth_gbps
    assert peak_bandwidth_gbps("NVIDIA H100 80GB HBM3") == 3350
    assert peak_bandwidth_gbps("NVIDIA H100 PCIe") == 2000
    assert peak_bandwidth_gbps("NVIDIA H200") == 4800
    assert peak_bandwidth_gbps("Imaginary GPU 9000") is None


def test_bench_cpu_runs_torch_rows_and_writes_json(tmp_path):
    from spikeforge.sw.bench_kernels import run_kernel_bench
    lines = []
    report = run_kernel_bench("cpu", sizes=[(8, 2, 4)], out_json=tmp_path / "k.json",
                              kernels=("cpsn", "lif", "prf"), budget_s=0.01, echo=lines.append)
    assert json.loads((tmp_path / "k.json").read_text()) == report
    impls = {(row["kernel"], row["impl"]) for row in report["rows"]}
    assert {("cpsn", "torch"), ("lif", "torch"), ("prf", "torch")} <= impls
    assert not any(impl == "triton" for _, impl in impls)
    assert any("need a GPU" in note for note in report["notes"])
    cpsn = next(r for r in report["rows"] if r["kernel"] == "cpsn" and r["impl"] == "torch")
    assert cpsn["bytes"] == 8 * 2 * 4 * (5 * 4 + 8)  # float32: n·(5e + 8)
    assert cpsn["ms"] > 0 and cpsn["gbps"] == pytest.approx(cpsn["bytes"] / cpsn["ms"] / 1e6)
    assert "pct_peak" not in cpsn and len(lines) >= len(report["rows"])
