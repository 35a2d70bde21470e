"""Benchmark of the fused Triton kernels against the torch references (and SpikingJelly's PSNs).

Each row times one forward + backward pass (spikes only, gradient of a random upstream) of one
neuron layer on ``x`` ``[T, N, C]``. Effective bandwidth uses the traffic model of
docs/kernels.md — the bytes *our* kernel design must move for that pass — for every
implementation, so the GB/s of a torch row reads as "the bandwidth the kernel would need to
match it", and ``% peak`` of a Triton row is its distance to the memory roofline.

Without a GPU only the torch rows run (small sizes); the Triton rows need a GPU (the CPU
interpreter measures nothing useful).

    spikeforge bench kernels [--device cuda] [--out bench.json] [--kernels prf] …
"""

import json
import math
import statistics
import time
from pathlib import Path

import torch

__all__ = ["run_kernel_bench", "peak_bandwidth_gbps", "traffic_bytes", "GPU_SIZES", "CPU_SIZES"]

STEPS = (8, 32, 128, 1024, 4096, 32768)
# (N, C) pairs: few neurons, a mid layer, a wide layer (N·C = 256, 16 Ki, 256 Ki)
WIDTHS = ((4, 64), (64, 256), (1024, 256))
MAX_ELEMENTS = 1 << 28  # T·N·C cap: 512 MiB per bf16 tensor
GPU_SIZES = [(t, n, c) for t in STEPS for n, c in WIDTHS if t * n * c <= MAX_ELEMENTS]
CPU_SIZES = [(t, n, c) for t in (8, 32, 128, 1024) for n, c in ((1, 64), (16, 64))]
SPIKINGJELLY_MAX_T = 4096  # PSN and SlidingPSN build T×T matrices

# Peak HBM/GDDR bandwidth in GB/s, matched in order against torch.cuda.get_device_name().
PEAK_GBPS = (
    ("H200", 4800), ("H100 NVL", 3900), ("H100 PCIe", 2000), ("H100", 3350), ("GH200", 4000),
    ("B200", 8000), ("A100-SXM4-80GB", 2039), ("A100 80GB PCIe", 1935), ("A100", 1555),
    ("L40S", 864), ("L4", 300), ("RTX 4090", 1008), ("A10G", 600), ("V100", 900), ("T4", 320),
)

CPSN_ORDER, CPSN_DILATION = 4, 2


def peak_bandwidth_gbps(name: str) -> float | None:
    """Peak memory bandwidth of a GPU by its device name, or ``None`` if unknown."""
    for key, gbps in PEAK_GBPS:
        if key.lower() in name.lower():
            return float(gbps)
    return None


def traffic_bytes(kernel: str, steps: int, batch: int, channels: int, dtype: torch.dtype,
                  device: torch.device) -> int:
    """Bytes that our kernels move for one forward + backward (docs/kernels.md, traffic model).

    ``e`` = element size, ``n = T·N·C``. CPSN: forward reads x, writes S; backward reads x and
    ∂L/∂S, writes and re-reads the fp32 ∂L/∂H, writes ∂L/∂x: ``n·(5e + 8)``. LIF: forward x, S;
    backward x, ∂L/∂S, ∂L/∂x, plus 8-byte checkpoints per tile: ``5e·n + 16·n/BLOCK_T``. PRF: the
    same, plus a second read of x (forward) and of x and ∂L/∂S (backward) when time is chunked.
    """
    n = steps * batch * channels
    e = torch.finfo(dtype).bits // 8
    if kernel == "cpsn":
        return n * (5 * e + 8)
    if kernel == "lif":
        from ..golden.kernels.lif import _plan
        block_t = _plan(batch * channels, device)[0]
        return 5 * e * n + 16 * n // block_t
    if kernel == "prf":
        from ..golden.kernels.prf import _plan
        block_t, _, _, n_chunks = _plan(steps, batch * channels, device, None)
        return (5 + (3 if n_chunks > 1 else 0)) * e * n + 16 * n // block_t
    raise ValueError(f"unknown kernel {kernel!r}")


def _time_ms(fn, device: torch.device, budget_s: float) -> float:
    """Median milliseconds of ``fn()`` after a warm-up; repetitions fit ``budget_s``."""
    cuda = device.type == "cuda"

    def once():
        if cuda:
            start, end = torch.cuda.Event(enable_timing=True), torch.cuda.Event(enable_timing=True)
            start.record()
            fn()
            end.record()
            end.synchronize()
            return start.elapsed_time(end)
        began = time.perf_counter()
        fn()
        return (time.perf_counter() - began) * 1e3

    first = once()  # warm-up: compilation, autotuning, allocator
    estimate = min(first, once())
    reps = max(1, min(50, int(budget_s * 1e3 / max(estimate, 1e-3))))
    return statistics.median(once() for _ in range(reps))


def _layers(kernel: str, channels: int, steps: int, device, sj):
    """``{implementation: module-or-function}`` of one layer; SpikingJelly only for CPSN."""
    from ..golden.cpsn import CPSN
    from ..golden.lif import DecoupledResetLIF
    from ..golden.prf import prf_membrane
    from ..golden.surrogate import ATan

    if kernel == "cpsn":
        impls = {b: CPSN(channels, CPSN_ORDER, CPSN_DILATION, backend=b).to(device)
                 for b in ("torch", "triton")}
        if sj is not None and steps <= SPIKINGJELLY_MAX_T:
            impls["sj-SlidingPSN"] = sj.SlidingPSN(CPSN_ORDER, step_mode="m").to(device)
            impls["sj-PSN"] = sj.PSN(steps).to(device)
        return impls
    if kernel == "lif":
        def lif_kernel(x):
            from ..golden.kernels import lif_decoupled_triton
            return lif_decoupled_triton(x)

        return {"torch": DecoupledResetLIF(backend="torch"), "triton": lif_kernel}
    log_delta = torch.full((channels,), math.log(0.05), device=device, requires_grad=True)
    log_theta = torch.full((channels,), math.log(1.0), device=device, requires_grad=True)

    def prf_torch(x):
        v = prf_membrane(x, log_delta.exp().to(x.dtype), log_theta.exp().to(x.dtype), 2.0,
                         "scan").real
        return ATan()(v - 1.0)

    def prf_kernel(x):
        from ..golden.kernels import prf_triton
        return prf_triton(x, log_delta, log_theta)

    return {"torch": prf_torch, "triton": prf_kernel}


def _spikingjelly():
    try:
        from spikingjelly.activation_based import neuron
    except ImportError:
        return None
    return neuron


def run_kernel_bench(device: str | torch.device = "cuda", sizes=None, out_json=None, *,
                     kernels=("cpsn", "lif", "prf"), dtype: torch.dtype | None = None,
                     budget_s: float = 0.3, echo=print) -> dict:
    """Time forward + backward of each kernel and reference; print a table; write JSON.

    ``sizes``: ``(T, N, C)`` triples (default :data:`GPU_SIZES` on CUDA, :data:`CPU_SIZES` on
    CPU). ``dtype``: bfloat16 on CUDA, float32 on CPU by default. Returns the report dict.
    """
    device = torch.device(device)
    on_gpu = device.type == "cuda"
    if on_gpu and not torch.cuda.is_available():
        raise RuntimeError("device='cuda' but no CUDA device is available")
    sizes = list(sizes if sizes is not None else (GPU_SIZES if on_gpu else CPU_SIZES))
    dtype = dtype or (torch.bfloat16 if on_gpu else torch.float32)
    name = torch.cuda.get_device_name(device) if on_gpu else "cpu"
    peak = peak_bandwidth_gbps(name) if on_gpu else None
    notes = []
    if not on_gpu:
        notes.append("no GPU: torch rows only; the Triton rows need a GPU")
    elif peak is None:
        notes.append(f"peak bandwidth of {name!r} unknown: % peak omitted")
    sj = _spikingjelly()
    if sj is None:
        notes.append("SpikingJelly not installed: PSN/SlidingPSN rows skipped")
    else:
        notes.append(f"SpikingJelly rows (CPSN only, T <= {SPIKINGJELLY_MAX_T}): PSN and "
                     f"SlidingPSN (k={CPSN_ORDER}, d=1) with their own weights")
    rows = []
    generator = torch.Generator().manual_seed(0)
    for kernel in kernels:
        for steps, batch, channels in sizes:
            x = torch.randn(steps, batch, channels, generator=generator).to(device, dtype)
            grad = torch.randn(x.shape, generator=generator).to(device, dtype)
            moved = traffic_bytes(kernel, steps, batch, channels, dtype, device)
            torch_ms = None
            for impl, layer in _layers(kernel, channels, steps, device, sj).items():
                if impl == "triton" and not on_gpu:
                    continue
                if isinstance(layer, torch.nn.Module):
                    layer = layer.to(dtype) if impl.startswith("sj-") else layer
                xr = x.detach().requires_grad_()

                def step(layer=layer, xr=xr):
                    torch.autograd.grad(layer(xr), xr, grad)

                ms = _time_ms(step, device, budget_s)
                torch_ms = ms if impl == "torch" else torch_ms
                gbps = moved / ms / 1e6
                row = {"kernel": kernel, "impl": impl, "T": steps, "N": batch, "C": channels,
                       "dtype": str(dtype).replace("torch.", ""), "ms": ms, "bytes": moved,
                       "gbps": gbps}
                if peak is not None:
                    row["pct_peak"] = 100 * gbps / peak
                if torch_ms is not None and impl != "torch":
                    row["speedup_vs_torch"] = torch_ms / ms
                rows.append(row)
                echo(_format_row(row))
    report = {"device": name, "peak_gbps": peak, "dtype": str(dtype).replace("torch.", ""),
              "rows": rows, "notes": notes}
    for note in notes:
        echo(f"note: {note}")
    if out_json is not None:
        Path(out_json).parent.mkdir(parents=True, exist_ok=True)
        Path(out_json).write_text(json.dumps(report, indent=2))
    return report


HEADER = (f"{'kernel':<6} {'impl':<14} {'T':>6} {'N·C':>8} {'ms':>10} {'GB/s':>8} "
          f"{'%peak':>6} {'×torch':>7}")


def _format_row(row: dict) -> str:
    pct = f"{row['pct_peak']:6.1f}" if "pct_peak" in row else f"{'-':>6}"
    speed = f"{row['speedup_vs_torch']:7.2f}" if "speedup_vs_torch" in row else f"{'-':>7}"
    return (f"{row['kernel']:<6} {row['impl']:<14} {row['T']:>6} {row['N'] * row['C']:>8} "
            f"{row['ms']:>10.3f} {row['gbps']:>8.1f} {pct} {speed}")


def run_and_print(*, device: str | None = None, out: str = "build/bench/kernels.json",
                  kernels=("cpsn", "lif", "prf"), dtype: str | None = None,
                  budget: float = 0.3, threads: int | None = None) -> None:
    """`spikeforge bench kernels`: the table on standard output and the JSON at ``out``."""
    if threads is not None:
        torch.set_num_threads(threads)
    print(HEADER)
    run_kernel_bench(device or ("cuda" if torch.cuda.is_available() else "cpu"),
                     out_json=out, kernels=tuple(kernels),
                     dtype=getattr(torch, dtype) if dtype else None, budget_s=budget)
    print(f"wrote {out}")
