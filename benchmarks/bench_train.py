"""Training throughput of the small brain encoder with MSE and with the OT loss (each solver).

Prints samples per second and the cost of a step relative to MSE, measured in one run with the
losses interleaved in shuffled order. Goal: OT costs at most 25% more per step than MSE on a CPU
at the default settings (small preset, batch 64, sample level, lambda 0.5).

    python benchmarks/bench_train.py [--steps 30] [--batch-size 64] [--device cpu]
    python benchmarks/bench_train.py --device cuda --preset paper --voxels 15724   # UMBRAE's sizes
    python benchmarks/bench_train.py --losses "mse,ot auto" --json out.json        # a subset, kept as JSON
"""

from __future__ import annotations

import argparse
import json
import platform
import random
import statistics
import time

import torch

from otnsd.model import PRESETS, BrainEncoder, EncoderConfig
from otnsd.ot import get_loss

LOSSES = {
    "mse": {"mse": {}},
    "ot exact": {"ot": {"lam": 0.5, "solver": "exact"}},
    "ot sinkhorn": {"ot": {"lam": 0.5, "solver": "sinkhorn"}},
    "ot auto": {"ot": {"lam": 0.5, "solver": "auto"}},
    "ot token (released code)": {"ot": {"lam": 0.5, "level": "token", "cost": "euclidean"}},
    "ot token (squared cost)": {"ot": {"lam": 0.5, "level": "token"}},
    "mse + ot": {"mse": {}, "ot": {"lam": 0.5}},
}


def main():
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--steps", type=int, default=30)
    p.add_argument("--batch-size", type=int, default=64)
    p.add_argument("--voxels", type=int, default=3931, help="subject 1 at the simulator's default scale")
    p.add_argument("--device", default="cpu")
    p.add_argument("--preset", default="small", choices=sorted(PRESETS), help="encoder size (otnsd.model.PRESETS)")
    p.add_argument("--losses", default=",".join(LOSSES), help=f"comma-separated, from: {', '.join(LOSSES)}")
    p.add_argument("--json", default=None, help="also write the table to this JSON file")
    args = p.parse_args()
    names = [k.strip() for k in args.losses.split(",") if k.strip()]
    unknown = [k for k in names if k not in LOSSES]
    if unknown or "mse" not in names:
        p.error(f"--losses must include mse (the reference) and only name known losses; unknown: {unknown}")
    device = torch.device(args.device)
    torch.manual_seed(0)
    model = BrainEncoder(EncoderConfig.preset(args.preset, {1: args.voxels})).to(device)
    opt = torch.optim.AdamW(model.parameters(), lr=1e-3)
    x = torch.randn(args.batch_size, args.voxels, device=device)
    y = torch.randn(args.batch_size, model.cfg.n_tokens, model.cfg.dim, device=device)
    losses = {k: get_loss(LOSSES[k]) for k in names}

    def step(loss_fn):
        loss = loss_fn(model(x, 1), y)
        opt.zero_grad(set_to_none=True)
        loss.backward()
        opt.step()
        if device.type == "cuda":
            torch.cuda.synchronize()

    for fn in losses.values():  # warm-up
        step(fn)
    times = {k: [] for k in losses}
    order = list(losses)
    rng = random.Random(0)
    for _ in range(args.steps):
        rng.shuffle(order)
        for k in order:
            t = time.perf_counter()
            step(losses[k])
            times[k].append(time.perf_counter() - t)
    med = {k: statistics.median(v) for k, v in times.items()}
    name = torch.cuda.get_device_name(device) if device.type == "cuda" else platform.machine()
    print(f"device: {device} ({name}), torch {torch.__version__}, {torch.get_num_threads()} threads; "
          f"{args.preset} preset ({model.n_parameters():,} parameters), {args.voxels} voxels, batch {args.batch_size}, "
          f"{args.steps} steps each, median step time")
    print()
    print("| loss | ms / step | samples / s | step time vs MSE |")
    print("|---|---:|---:|---:|")
    rows = []
    for k, t in med.items():
        rows.append({"loss": k, "ms_per_step": 1e3 * t, "samples_per_s": args.batch_size / t, "vs_mse": t / med["mse"]})
        print(f"| {k} | {1e3 * t:.1f} | {args.batch_size / t:.0f} | {t / med['mse']:.2f} |")
    if args.json:
        with open(args.json, "w") as f:
            json.dump({"device": str(device), "device_name": name, "preset": args.preset, "batch_size": args.batch_size,
                       "voxels": args.voxels, "steps": args.steps, "rows": rows}, f, indent=1)


if __name__ == "__main__":
    main()
