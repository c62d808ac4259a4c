"""Speed and accuracy of the partial-OT loss, forward + backward, against POT and MSE.

Prints one table measured in one run. For each problem: milliseconds per loss evaluation with its
backward pass (median over repeats), the ratio to POT's exact ``partial_wasserstein2`` (looped
over the samples at token level, as the paper's released code does), the ratio to MSE, and the
relative error of the loss against the exact one. Repeats interleave the solvers.

    python benchmarks/bench_ot.py                 # CPU, the default sizes
    python benchmarks/bench_ot.py --device cuda   # on a GPU
    python benchmarks/bench_ot.py --quick         # small sizes, a smoke test
    python benchmarks/bench_ot.py --device cuda --profile --json out.json   # + where the time goes, + JSON
"""

from __future__ import annotations

import argparse
import json
import platform
import random
import statistics
import time

import numpy as np
import ot
import torch

from otnsd.ot import choose_solver, cost_matrix, mse_loss, partial_ot_loss


def _sync(device):
    if device.type == "cuda":
        torch.cuda.synchronize()


def _time_interleaved(fns: dict, device, repeats) -> dict:
    """Median ms of each function; repeats interleave the functions in shuffled order so that
    drift in the machine's speed hits all of them alike."""
    for fn in fns.values():  # warm-up
        fn()
    _sync(device)
    times = {k: [] for k in fns}
    order = list(fns)
    rng = random.Random(0)
    for _ in range(repeats):
        rng.shuffle(order)  # no solver always runs right after the same one
        for k in order:
            fn = fns[k]
            t = time.perf_counter()
            fn()
            _sync(device)
            times[k].append(time.perf_counter() - t)
    return {k: 1e3 * statistics.median(v) for k, v in times.items()}


def pot_reference(x, y, lam, level):
    """POT's exact partial_wasserstein2 on torch tensors (envelope gradient), looped per sample at token level."""
    def one(xs, ys):
        C = cost_matrix(xs, ys)
        n, m = C.shape
        a = torch.full((n,), 1.0 / n, dtype=torch.float64, device=C.device)
        b = torch.full((m,), 1.0 / m, dtype=torch.float64, device=C.device)
        # m a hair inside the total mass: POT rejects m == sum(a) when float sums round down
        return ot.partial.partial_wasserstein2(a, b, C.double(), m=min(lam, 1 - 1e-9))

    if level == "sample":
        return one(x.reshape(len(x), -1), y.reshape(len(y), -1))
    return torch.stack([one(xs, ys) for xs, ys in zip(x, y)]).mean()


def run_case(level, shape, lam, device, repeats, seed=0):
    g = torch.Generator().manual_seed(seed)
    y = torch.randn(shape, generator=g)
    x = (y + torch.randn(shape, generator=g)).to(device).requires_grad_(True)
    y = y.to(device)

    def loss_fn(kind):
        if kind == "mse":
            return lambda: mse_loss(x, y, level=level)
        if kind == "POT partial_wasserstein2":
            return lambda: pot_reference(x, y, lam, level)
        return lambda: partial_ot_loss(x, y, lam, level=level, solver=kind)

    def step(fn):
        def go():
            x.grad = None
            fn().backward()
        return go

    peak_gpu_mib(device)  # reset: each problem reports its own peak
    with torch.no_grad():
        exact_value = float(partial_ot_loss(x, y, lam, level=level, solver="exact"))
    kinds = ("POT partial_wasserstein2", "exact", "sinkhorn", "auto", "mse")
    ms = _time_interleaved({k: step(loss_fn(k)) for k in kinds}, device, repeats)
    rows = {}
    for kind in kinds:
        with torch.no_grad():
            rows[kind] = (ms[kind], float(loss_fn(kind)()))
    pot_ms, mse_ms = rows["POT partial_wasserstein2"][0], rows["mse"][0]
    n = shape[1] if level == "token" else shape[0]
    label = f"{level} " + (f"B={shape[0]} x {n}x{n}, D={shape[2]}" if level == "token" else f"N={n}, D={int(np.prod(shape[1:]))}")
    out = []
    for kind, (ms, value) in rows.items():
        name = kind + (f" ({choose_solver(n, n, lam, device)})" if kind == "auto" else "")
        err = "" if kind == "mse" else f"{(value - exact_value) / exact_value:+.1e}"
        out.append((label, name, ms, pot_ms / ms, ms / mse_ms, err))
    return out


def main():
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--device", default="cpu")
    p.add_argument("--lam", type=float, default=0.5)
    p.add_argument("--repeats", type=int, default=5)
    p.add_argument("--quick", action="store_true", help="small sizes only")
    p.add_argument("--sample-sizes", default="64,256,1024", help="N of the sample-level problems (D = 768)")
    p.add_argument("--json", default=None, help="also write the table to this JSON file")
    p.add_argument("--profile", action="store_true",
                   help="then profile the last problem's auto solver (torch.profiler): where its time goes")
    args = p.parse_args()
    device = torch.device(args.device)
    if args.quick:
        cases = [("sample", (64, 768)), ("token", (8, 64, 128))]
    else:
        sizes = [int(n) for n in args.sample_sizes.split(",")]
        cases = [*(("sample", (n, 768)) for n in sizes), ("token", (64, 256, 1024))]
    name = torch.cuda.get_device_name(device) if device.type == "cuda" else platform.processor() or platform.machine()
    print(f"device: {device} ({name}), torch {torch.__version__}, POT {ot.__version__}, "
          f"{torch.get_num_threads()} CPU threads, lam = {args.lam}, float32 inputs, forward + backward")
    print()
    header = "| problem | solver | ms | speed-up vs POT | x MSE time | rel. error vs exact |"
    print(header)
    print("|---|---|---:|---:|---:|---:|")
    rows = []
    for level, shape in cases:
        # millisecond-scale problems need many repeats for a stable median
        size = np.prod(shape)
        reps = args.repeats * 10 if size < 10**6 else args.repeats if size < 10**7 else max(1, args.repeats // 2)
        if level == "sample" and shape[0] > 1024:
            reps = 1  # the exact solvers take seconds per call there
        case = run_case(level, shape, args.lam, device, reps)
        peak = peak_gpu_mib(device)  # all solvers of this problem together
        for label, kind, ms, vs_pot, vs_mse, err in case:
            print(f"| {label} | {kind} | {ms:.1f} | {vs_pot:.2f} | {vs_mse:.0f} | {err} |", flush=True)
            rows.append({"problem": label, "level": level, "shape": list(shape), "solver": kind, "ms": ms,
                         "speedup_vs_pot": vs_pot, "x_mse_time": vs_mse, "rel_error": err, "peak_gpu_mib": peak})
    if device.type == "cuda":
        print("\npeak GPU memory (MiB) over each problem: " + ", ".join(
            f"{label} {mib:.0f}" for label, mib in dict((r["problem"], r["peak_gpu_mib"]) for r in rows).items()))
    if args.json:
        with open(args.json, "w") as f:
            json.dump({"device": str(device), "device_name": name, "lam": args.lam, "rows": rows}, f, indent=1)
    if args.profile:
        level, shape = cases[-1]
        print(f"\nprofile: auto solver, {level} level {tuple(shape)}, forward + backward, 3 calls")
        print(profile_table(level, shape, args.lam, device))


def peak_gpu_mib(device) -> float | None:
    """Peak GPU memory since the last call (MiB), then reset; None on a CPU."""
    if device.type != "cuda":
        return None
    peak = torch.cuda.max_memory_allocated(device) / 2**20
    torch.cuda.reset_peak_memory_stats(device)
    return peak


def profile_table(level, shape, lam, device, rows=15) -> str:
    """torch.profiler's operators by self time for the auto solver's forward + backward."""
    from torch.profiler import ProfilerActivity, profile

    g = torch.Generator().manual_seed(0)
    y = torch.randn(shape, generator=g)
    x = (y + torch.randn(shape, generator=g)).to(device).requires_grad_(True)
    y = y.to(device)
    partial_ot_loss(x, y, lam, level=level, solver="auto").backward()  # warm-up
    activities = [ProfilerActivity.CPU] + ([ProfilerActivity.CUDA] if device.type == "cuda" else [])
    with profile(activities=activities) as prof:
        for _ in range(3):
            x.grad = None
            partial_ot_loss(x, y, lam, level=level, solver="auto").backward()
        _sync(device)
    key = "self_cuda_time_total" if device.type == "cuda" else "self_cpu_time_total"
    return prof.key_averages().table(sort_by=key, row_limit=rows)


if __name__ == "__main__":
    main()
