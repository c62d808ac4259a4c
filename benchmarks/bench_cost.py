"""Cost of the safe squared-distance cost matrix, against the plain float32 matmul form.

``otnsd.ot.cost_matrix`` centres both point clouds and evaluates ``|x|² + |y|² - 2 x·y`` in float64,
because in float32 the plain form cancels catastrophically for embeddings far from the origin.
This prints, for the cost matrices the losses build (sample level: the batch flattened; token
level: one T x T problem per sample), the time of the cost with its backward pass, the plain
float32 form's time, their ratio, and each one's relative error against float64 direct
differences on embeddings 20 units from the origin. Measured in one run, repeats interleaved.

    python benchmarks/bench_cost.py                 # CPU
    python benchmarks/bench_cost.py --device cuda   # on a GPU
"""

from __future__ import annotations

import argparse
import platform

import torch

from bench_ot import _time_interleaved
from otnsd.ot import cost_matrix


def plain_float32(x, y):
    """The matmul form in the input's dtype, as the cost was computed before."""
    x2 = (x * x).sum(-1, keepdim=True)
    y2 = (y * y).sum(-1, keepdim=True).transpose(-1, -2)
    return (x2 + y2 - 2 * x @ y.transpose(-1, -2)).clamp_min(0)


def direct64(x, y):
    x, y = x.double(), y.double()
    if x.dim() == 2:
        return torch.stack([((x[i] - y) ** 2).sum(-1) for i in range(len(x))])
    return torch.stack([direct64(a, b) for a, b in zip(x, y)])


def main(argv=None):
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--device", default="cpu")
    parser.add_argument("--repeats", type=int, default=15)
    args = parser.parse_args(argv)
    device = torch.device(args.device)
    problems = {
        "sample N=64, D=16x64 (simulator)": (64, 1024),
        "sample N=64, D=256x1024 (paper)": (64, 256 * 1024),
        "token B=64 x 256x256, D=1024 (paper)": (64, 256, 1024),
    }
    print(f"device {device} ({platform.processor() or platform.machine()}), torch {torch.__version__}, "
          f"{torch.get_num_threads()} threads; embeddings y = N(0,1) + 20, x = y + 0.01 N(0,1); forward + backward")
    print(f"| problem | safe (ms) | plain float32 (ms) | safe / plain | rel. error safe | rel. error plain |")
    print("|---|---:|---:|---:|---:|---:|")
    for name, shape in problems.items():
        g = torch.Generator().manual_seed(0)
        y = (torch.randn(shape, generator=g) + 20).to(device)
        x = (y.cpu() + 0.01 * torch.randn(shape, generator=g)).to(device).requires_grad_()

        def run(fn):
            def step():
                x.grad = None
                fn(x, y).sum().backward()
            return step

        ms = _time_interleaved({"safe": run(cost_matrix), "plain": run(plain_float32)}, device, args.repeats)
        ref = direct64(x.detach(), y)
        with torch.no_grad():
            err = {k: float(((fn(x, y).double() - ref).abs().max() / ref.abs().max()).cpu())
                   for k, fn in (("safe", cost_matrix), ("plain", plain_float32))}
        print(f"| {name} | {ms['safe']:.1f} | {ms['plain']:.1f} | {ms['safe'] / ms['plain']:.2f} | "
              f"{err['safe']:.1e} | {err['plain']:.1e} |")


if __name__ == "__main__":
    main()
