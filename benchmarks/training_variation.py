"""How much a trained model's numbers vary: over training seeds, and under a last-digit nudge.

The notebook regression needs, for every quantity it checks, a scale of variation that another
CPU cannot exceed. A CPU with other SIMD kernels changes a training run's floats in their last
digits; whether that stays in the last digits or grows to a seed-sized difference depends on the
model, not on the CPU. This script measures both scales for the single-subject models of
notebooks 02 and 03 (simulated NSD, the notebooks' defaults):

- **seed spread**: the standard deviation of each metric over training seeds 0..N-1 (the data
  fixed);
- **nudges**: seed 0 retrained with every initial weight multiplied by ``1 + 1e-6 * z`` (z
  standard normal, a few float32 ulps; one draw of z per nudge), each metric's change.

A model is *chaotic* when its nudges move its metrics by a sizeable part of their seed spread
(the last-digit change grew by orders of magnitude); ``tests/notebook_tolerances.py`` derives the
tolerances of its records from these scales.

    python benchmarks/training_variation.py --seeds 5 --nudges 3 --json variation.json
"""

from __future__ import annotations

import argparse
import dataclasses
import json
import tempfile
from pathlib import Path

import numpy as np
import torch

import otnsd.train as train
from otnsd.experiments import setup

NUDGE = 1e-6
MODELS = ("MSE-S1", "MSE+OT-S1", "OT-S1", "OT-S1 (released code)", "InfoNCE-S1")


def _nudged(build, nudge: int):
    def build_nudged(cfg, dataset):
        model = build(cfg, dataset)
        gen = torch.Generator().manual_seed(12345 + nudge)
        with torch.no_grad():
            for p in model.parameters():
                p.mul_(1 + NUDGE * torch.randn(p.shape, generator=gen))
        return model
    return build_nudged


def metrics(ex, models) -> dict:
    results, _ = ex.evaluate(ex.predict(models), n_boot=10)
    out = {name: {m: float(v[0]) for m, v in r.items() if v is not None and v[0] is not None} for name, r in results.items()}
    target = ex.data.image_embeddings(ex.ids)
    for name, emb in ex.predict(models).items():
        out[name]["sq_error"] = float(((emb - target) ** 2).sum(axis=(1, 2)).mean())
    return out


def main(argv=None):
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--seeds", type=int, default=5, help="training seeds 0..N-1 (N >= 3)")
    p.add_argument("--nudges", type=int, default=3, help="nudged retrainings of seed 0")
    p.add_argument("--models", default=",".join(MODELS), help=f"comma-separated, from: {', '.join(MODELS)}")
    p.add_argument("--json", type=Path, default=None, help="write every number to this file")
    p.add_argument("--runs-dir", default=None, help="run cache for the seed runs (default OTNSD_RUNS)")
    args = p.parse_args(argv)
    names = [m.strip() for m in args.models.split(",") if m.strip()]
    if args.seeds < 3 or any(m not in MODELS for m in names):
        p.error(f"--seeds must be >= 3 and --models a subset of {MODELS}")
    ex = setup({"runs_dir": args.runs_dir, "progress": False}, captions=True)
    paper = ex.paper_models()
    seeded = {(m, s): dataclasses.replace(paper[m], seed=s) for m in names for s in range(args.seeds)}
    # one model at a time, as the stored notebooks were trained
    per_seed = metrics(ex, train.fit_many(seeded, ex.data, args.runs_dir, progress=False, ensemble=False))
    build = train.build_encoder
    nudged = []
    for j in range(args.nudges):
        train.build_encoder = _nudged(build, j)  # inherited by the forked workers
        try:
            with tempfile.TemporaryDirectory() as scratch:  # the cache key cannot see the nudge
                nudged.append(metrics(ex, train.fit_many({m: paper[m] for m in names}, ex.data, scratch, progress=False,
                                                         ensemble=False)))
        finally:
            train.build_encoder = build
    report = {}
    print("| model | metric | seed mean | seed SD | nudge RMS change / sqrt 2 | ratio |")
    print("|---|---|---:|---:|---:|---:|")
    for m in names:
        report[m] = {}
        for metric in per_seed[(m, 0)]:
            values = np.array([per_seed[(m, s)][metric] for s in range(args.seeds)])
            sd = float(values.std(ddof=1))
            changes = [n[m][metric] - values[0] for n in nudged]
            nudge_sd = float(np.sqrt(np.mean(np.square(changes)) / 2))
            report[m][metric] = {"per_seed": values.tolist(), "sd": sd, "nudged": [n[m][metric] for n in nudged],
                                 "nudge_sd": nudge_sd}
            ratio = nudge_sd / sd if sd > 0 else float("nan")
            print(f"| {m} | {metric} | {values.mean():.4g} | {sd:.3g} | {nudge_sd:.3g} | {ratio:.2f} |")
    if args.json:
        args.json.write_text(json.dumps({"seeds": args.seeds, "nudge": NUDGE, "nudges": args.nudges, "models": report},
                                        indent=1))


if __name__ == "__main__":
    main()
