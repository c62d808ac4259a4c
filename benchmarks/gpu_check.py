"""The GPU check: versions, the OT and training benchmarks, the CUDA-only tests, in one command.

    python benchmarks/gpu_check.py --out gpu_check                     # on a CUDA machine, <= 8 minutes
    python benchmarks/gpu_check.py --device cpu --quick --out /tmp/gc  # a smoke test (make test runs it)

Each part runs in its own process under its own time limit (cut to what is left of the total); a
part that fails or runs out of time is reported and the next one runs. Everything printed also goes
to OUT/gpu_check.md, each benchmark's table to OUT/<part>.json. The last section sets the numbers
beside the project's GPU goals:

* token-level partial OT for a batch of 64 x 256 x 256 tokens (D = 1024), forward + backward,
  under 10 ms on one H100;
* the sample-level OT step within a few percent (here: 5%) of an MSE step;
* training on the GPU follows the CPU's loss curve; one-process ``torchrun`` trains over NCCL.

Needs the project installed (``pip install -e '.[test]'``) and, on the GPU machine, a CUDA build
of PyTorch.
"""

from __future__ import annotations

import argparse
import json
import os
import subprocess
import sys
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
BENCH = ROOT / "benchmarks"
TOTAL_LIMIT_S = 480
TOKEN_GOAL_MS = 10.0
STEP_OVERHEAD_GOAL = 1.05
CUDA_TESTS = ["-m", "cuda", "tests/test_gpu.py", "tests/test_ot.py"]  # the tests marked cuda


def parts(device: str, quick: bool, out: Path) -> list[tuple[str, list[str], int]]:
    """(name, command, time limit in s) of each part, in order."""
    py = sys.executable
    if quick:  # small sizes: proves every part runs, measures nothing worth quoting
        return [
            ("versions", [py, __file__, "--versions", device], 30),
            ("bench_ot", [py, str(BENCH / "bench_ot.py"), "--device", device, "--quick", "--repeats", "1",
                          "--json", str(out / "bench_ot.json"), "--profile"], 60),
            ("bench_train_small", [py, str(BENCH / "bench_train.py"), "--device", device, "--steps", "2",
                                   "--losses", "mse,ot auto,mse + ot,ot token (squared cost)",
                                   "--json", str(out / "bench_train_small.json")], 60),
            ("bench_train_paper", [py, str(BENCH / "bench_train.py"), "--device", device, "--preset", "paper",
                                   "--voxels", "256", "--batch-size", "2", "--steps", "1", "--losses", "mse,ot auto",
                                   "--json", str(out / "bench_train_paper.json")], 90),
            ("host_syncs", [py, __file__, "--count-syncs", device, "--size", "32"], 30),
            ("cuda_tests", [py, "-m", "pytest", "-q", "-p", "no:cacheprovider", *CUDA_TESTS], 90),
        ]
    return [
        ("versions", [py, __file__, "--versions", device], 20),
        ("bench_ot", [py, str(BENCH / "bench_ot.py"), "--device", device, "--sample-sizes", "64,256,1024,4096",
                      "--json", str(out / "bench_ot.json"), "--profile"], 200),
        ("bench_train_small", [py, str(BENCH / "bench_train.py"), "--device", device, "--steps", "20",
                               "--json", str(out / "bench_train_small.json")], 45),
        ("bench_train_paper", [py, str(BENCH / "bench_train.py"), "--device", device, "--preset", "paper",
                               "--voxels", "15724", "--batch-size", "64", "--steps", "10",
                               "--json", str(out / "bench_train_paper.json")], 100),
        ("host_syncs", [py, __file__, "--count-syncs", device, "--size", "256"], 20),
        ("cuda_tests", [py, "-m", "pytest", "-q", "-p", "no:cacheprovider", *CUDA_TESTS], 95),
    ]


def run_part(name: str, cmd: list[str], limit: float) -> dict:
    env = {**os.environ, "PYTHONUNBUFFERED": "1", "HF_HUB_OFFLINE": "1",
           "PYTHONPATH": os.pathsep.join(filter(None, [str(ROOT), os.environ.get("PYTHONPATH")]))}
    start = time.perf_counter()
    try:
        proc = subprocess.run(cmd, cwd=ROOT, env=env, capture_output=True, text=True, timeout=limit)
        status = "ok" if proc.returncode == 0 else f"failed (exit {proc.returncode})"
        text = proc.stdout + (f"\n[stderr]\n{proc.stderr[-4000:]}" if proc.returncode else "")
    except subprocess.TimeoutExpired as e:
        status = f"timed out after {limit:.0f} s"
        text = (e.stdout or b"").decode(errors="replace") if isinstance(e.stdout, bytes) else (e.stdout or "")
    return {"name": name, "status": status, "seconds": time.perf_counter() - start, "output": text.rstrip()}


def versions(device: str) -> None:
    import platform

    import numpy
    import ot
    import torch

    print(f"python {platform.python_version()}, torch {torch.__version__} (CUDA build {torch.version.cuda}), "
          f"POT {ot.__version__}, numpy {numpy.__version__}, {platform.machine()}, {os.cpu_count()} CPUs")
    if device.startswith("cuda"):
        p = torch.cuda.get_device_properties(0)
        print(f"GPU: {p.name}, {p.total_memory / 2**30:.1f} GiB, compute capability {p.major}.{p.minor}, "
              f"cuDNN {torch.backends.cudnn.version()}, TF32 matmul {torch.backends.cuda.matmul.allow_tf32}")
        try:
            smi = subprocess.run(["nvidia-smi", "--query-gpu=driver_version,clocks.max.sm,power.limit",
                                  "--format=csv,noheader"], capture_output=True, text=True, timeout=10)
            print(f"nvidia-smi: driver, max SM clock, power limit: {smi.stdout.strip()}")
        except (OSError, subprocess.TimeoutExpired):
            print("nvidia-smi: not available")
    else:
        print(f"device {device}: no GPU in this run")


def count_syncs(device: str, size: int) -> None:
    """Host synchronisations in one call of the entropic solver and of the auto solver (CUDA's sync
    debug mode counts them; a sync stalls the GPU queue, e.g. a convergence test read on the host)."""
    import warnings

    import torch

    from otnsd.ot import partial_plan

    if not device.startswith("cuda"):
        print(f"host syncs: not measured on {device} (CUDA only)")
        return
    g = torch.Generator().manual_seed(0)
    C = torch.rand(size, size, generator=g).to(device)
    for solver in ("sinkhorn", "auto"):
        partial_plan(C, 0.5, solver=solver)  # warm-up
        torch.cuda.synchronize()
        with warnings.catch_warnings(record=True) as caught:
            warnings.simplefilter("always")
            torch.cuda.set_sync_debug_mode("warn")
            try:
                partial_plan(C, 0.5, solver=solver)
            finally:
                torch.cuda.set_sync_debug_mode("default")
        syncs = [w for w in caught if "synchroniz" in str(w.message)]
        where = sorted({f"{Path(w.filename).name}:{w.lineno}" for w in syncs})
        print(f"host syncs, solver {solver}, {size}x{size}: {len(syncs)}" + (f" at {', '.join(where)}" if where else ""))


def goals(out: Path, device: str) -> list[str]:
    """The goal table, from the benchmarks' JSON files."""
    def load(name):
        path = out / f"{name}.json"
        return json.loads(path.read_text()) if path.is_file() else None

    lines = ["| goal | measured | met |", "|---|---|---|"]
    on_gpu = device.startswith("cuda")
    ot_rows = (load("bench_ot") or {}).get("rows", [])
    token = [r for r in ot_rows if r["level"] == "token" and r["shape"] == [64, 256, 1024] and r["solver"].startswith("auto")]
    if token:
        ms = token[0]["ms"]
        lines.append(f"| token-level OT, 64 x 256 x 256, D = 1024, < {TOKEN_GOAL_MS:.0f} ms (one H100) | {ms:.1f} ms "
                     f"({token[0]['solver']}) | {'yes' if ms < TOKEN_GOAL_MS else 'no'}{'' if on_gpu else ' (not a GPU)'} |")
    else:
        lines.append(f"| token-level OT, 64 x 256 x 256, D = 1024, < {TOKEN_GOAL_MS:.0f} ms (one H100) | not measured "
                     "(--quick runs small sizes) | - |")
    for preset in ("small", "paper"):
        rows = {r["loss"]: r for r in (load(f"bench_train_{preset}") or {}).get("rows", [])}
        for loss in ("ot auto", "mse + ot"):  # the sample-level loss, alone and added to MSE
            if loss in rows:
                x = rows[loss]["vs_mse"]
                lines.append(f"| {preset} preset: step with {loss} <= {STEP_OVERHEAD_GOAL:.2f} x MSE's | {x:.2f} x | "
                             f"{'yes' if x <= STEP_OVERHEAD_GOAL else 'no'}{'' if on_gpu else ' (not a GPU)'} |")
        for loss in ("ot token (squared cost)", "ot token (released code)"):  # reported beside the goals
            if loss in rows:
                lines.append(f"| {preset} preset: step with {loss} vs MSE's (no goal) | {rows[loss]['vs_mse']:.2f} x | - |")
    return lines


def main(argv=None) -> int:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--device", default="cuda", help="cuda (the check) or cpu (a smoke test with --quick)")
    p.add_argument("--quick", action="store_true", help="small sizes and few steps: checks that every part runs")
    p.add_argument("--out", default="gpu_check", help="folder for gpu_check.md and the benchmarks' JSON")
    p.add_argument("--versions", metavar="DEVICE", help=argparse.SUPPRESS)
    p.add_argument("--count-syncs", metavar="DEVICE", help=argparse.SUPPRESS)
    p.add_argument("--size", type=int, default=256, help=argparse.SUPPRESS)
    args = p.parse_args(argv)
    if args.versions:
        versions(args.versions)
        return 0
    if args.count_syncs:
        count_syncs(args.count_syncs, args.size)
        return 0
    if args.device.startswith("cuda"):
        import torch

        if not torch.cuda.is_available():
            p.error("no CUDA device here: run with --device cpu --quick for the smoke test")
    out = Path(args.out)
    out.mkdir(parents=True, exist_ok=True)
    report = [f"# GPU check: device {args.device}{' (quick)' if args.quick else ''}", ""]
    start = time.perf_counter()
    results = []
    for name, cmd, limit in parts(args.device, args.quick, out):
        left = TOTAL_LIMIT_S - (time.perf_counter() - start)
        if left < 5:
            results.append({"name": name, "status": "not run (the 8-minute total is spent)", "seconds": 0.0, "output": ""})
        else:
            print(f"== {name} (limit {min(limit, left):.0f} s)", flush=True)
            results.append(run_part(name, cmd, min(limit, left)))
            print(results[-1]["output"] + f"\n-- {name}: {results[-1]['status']}, {results[-1]['seconds']:.1f} s\n", flush=True)
        r = results[-1]
        report += [f"## {r['name']}: {r['status']}, {r['seconds']:.1f} s", "", "```", r["output"], "```", ""]
    report += ["## goals", "", *goals(out, args.device), "",
               f"total {time.perf_counter() - start:.0f} s; parts: " + ", ".join(f"{r['name']} {r['status']}" for r in results)]
    (out / "gpu_check.md").write_text("\n".join(report) + "\n")
    print("\n".join(report[report.index("## goals"):]))
    print(f"written: {out / 'gpu_check.md'}")
    return 0 if all(r["status"] == "ok" for r in results) else 1


if __name__ == "__main__":
    sys.exit(main())
