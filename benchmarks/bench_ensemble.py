"""Training throughput of ensembles: models per minute, today's one-model workers against batched
ensembles of k members (otnsd.ensemble), in one run.

Every row trains the same N configurations cold (one architecture, N training seeds, MSE or
another loss; simulated NSD at the ``nsd`` difficulty, as the notebooks) with ``fit_many`` into a
fresh run cache, ``--workers`` forked one-thread processes, and times the whole call (forking,
batches, validation, a checkpoint per epoch, loading the results). The rows are run in shuffled
order, twice each, and the best time of each is kept.

    python benchmarks/bench_ensemble.py                       # tiny and small, k = 1, 3, 5, 10
    python benchmarks/bench_ensemble.py --presets tiny --members 1,5 --models 10 --json out.json
"""

from __future__ import annotations

import argparse
import dataclasses
import json
import platform
import random
import tempfile
import time

import torch

from otnsd.data import open_dataset
from otnsd.train import TrainConfig, fit_many

LOSSES = {"mse": {"mse": {}}, "mse+ot": {"mse": {}, "ot": {"lam": 0.5}}, "ot": {"ot": {"lam": 0.5}}}


def _positive_ints(text: str) -> list[int]:
    try:
        values = [int(v) for v in text.split(",") if v.strip()]
    except ValueError:
        raise argparse.ArgumentTypeError(f"expected comma-separated whole numbers, got {text!r}") from None
    if not values or min(values) < 1:
        raise argparse.ArgumentTypeError(f"expected whole numbers >= 1, got {text!r}")
    return values


def timed_run(configs, data, *, members: int | None, workers: int) -> float:
    """Seconds for fit_many to train ``configs`` cold: ``members=None`` one model per worker
    (``ensemble=False``), else ensembles of at most ``members``."""
    with tempfile.TemporaryDirectory() as runs_dir:
        start = time.perf_counter()
        fit_many(configs, data, runs_dir, workers=workers, progress=False, ensemble=members or False)
        return time.perf_counter() - start


def main(argv=None):
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--presets", default="tiny,small", help="comma-separated encoder presets")
    p.add_argument("--members", type=_positive_ints, default=[1, 3, 5, 10], help="ensemble sizes k")
    p.add_argument("--models", type=int, default=20, help="models per row (N training seeds)")
    p.add_argument("--epochs", type=int, default=3)
    p.add_argument("--loss", default="mse", choices=sorted(LOSSES))
    p.add_argument("--workers", type=int, default=2)
    p.add_argument("--repeats", type=int, default=2, help="runs of each row (the best is kept)")
    p.add_argument("--json", default=None, help="also write the table to this JSON file")
    args = p.parse_args(argv)
    presets = [s.strip() for s in args.presets.split(",") if s.strip()]
    if args.models < 1 or args.epochs < 1 or args.workers < 1 or args.repeats < 1:
        p.error("--models, --epochs, --workers and --repeats must be >= 1")
    data = open_dataset("simulated", seed=0, difficulty="nsd")
    rows = [(preset, k) for preset in presets for k in [None, *args.members]]
    order = rows * args.repeats
    random.Random(0).shuffle(order)
    best: dict = {}
    for preset, k in order:
        base = TrainConfig(loss=LOSSES[args.loss], preset=preset, epochs=args.epochs)
        configs = [dataclasses.replace(base, seed=s) for s in range(args.models)]
        t = timed_run(configs, data, members=k, workers=args.workers)
        best[(preset, k)] = min(t, best.get((preset, k), float("inf")))
    table = []
    print(f"{args.models} {args.loss} models x {args.epochs} epochs, {args.workers} one-thread processes, "
          f"{platform.processor() or platform.machine()}, torch {torch.__version__}")
    print("| preset | training | seconds | models per minute | vs one model per worker |")
    print("|---|---|---:|---:|---:|")
    for preset, k in rows:
        t, t0 = best[(preset, k)], best[(preset, None)]
        how = "one model per worker (before)" if k is None else f"ensembles of <= {k}"
        print(f"| {preset} | {how} | {t:.1f} | {60 * args.models / t:.1f} | {t0 / t:.2f}x |")
        table.append({"preset": preset, "members": k, "seconds": t, "models_per_minute": 60 * args.models / t,
                      "speedup": t0 / t})
    if args.json:
        with open(args.json, "w") as f:
            json.dump({"models": args.models, "epochs": args.epochs, "loss": args.loss, "workers": args.workers,
                       "rows": table}, f, indent=1)


if __name__ == "__main__":
    main()
