"""Training throughput of the small brain encoder with MSE and with the OT loss (each solver).

Prints samples per second and the cost of a step relative to MSE, measured in one run with the
losses interleaved in shuffled order. Goal: OT costs at most 25% more per step than MSE on a CPU
at the default settings (small preset, batch 64, sample level, lambda 0.5).

    python benchmarks/bench_train.py [--steps 30] [--batch-size 64] [--device cpu]
"""

from __future__ import annotations

import argparse
import platform
import random
import statistics
import time

import torch

from otnsd.model import BrainEncoder, EncoderConfig
from otnsd.ot import get_loss

LOSSES = {
    "mse": {"mse": {}},
    "ot exact": {"ot": {"lam": 0.5, "solver": "exact"}},
    "ot sinkhorn": {"ot": {"lam": 0.5, "solver": "sinkhorn"}},
    "ot auto": {"ot": {"lam": 0.5, "solver": "auto"}},
    "ot token (released code)": {"ot": {"lam": 0.5, "level": "token", "cost": "euclidean"}},
    "mse + ot": {"mse": {}, "ot": {"lam": 0.5}},
}


def main():
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--steps", type=int, default=30)
    p.add_argument("--batch-size", type=int, default=64)
    p.add_argument("--voxels", type=int, default=3931, help="subject 1 at the simulator's default scale")
    p.add_argument("--device", default="cpu")
    args = p.parse_args()
    device = torch.device(args.device)
    torch.manual_seed(0)
    model = BrainEncoder(EncoderConfig.preset("small", {1: args.voxels})).to(device)
    opt = torch.optim.AdamW(model.parameters(), lr=1e-3)
    x = torch.randn(args.batch_size, args.voxels, device=device)
    y = torch.randn(args.batch_size, model.cfg.n_tokens, model.cfg.dim, device=device)
    losses = {k: get_loss(v) for k, v in LOSSES.items()}

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
    print(f"device: {device} ({platform.machine()}), torch {torch.__version__}, {torch.get_num_threads()} threads; "
          f"small preset ({model.n_parameters():,} parameters), {args.voxels} voxels, batch {args.batch_size}, "
          f"{args.steps} steps each, median step time")
    print()
    print("| loss | ms / step | samples / s | step time vs MSE |")
    print("|---|---:|---:|---:|")
    for k, t in med.items():
        print(f"| {k} | {1e3 * t:.1f} | {args.batch_size / t:.0f} | {t / med['mse']:.2f} |")


if __name__ == "__main__":
    main()
