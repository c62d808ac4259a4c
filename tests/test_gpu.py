"""The GPU check (benchmarks/gpu_check.py): its CPU smoke run here, and the CUDA-only tests it runs
on a GPU machine (skipped without one)."""

import json
import os
import subprocess
import sys
from pathlib import Path

import pytest
import torch

from otnsd.data import SimulatedNSD
from otnsd.ot import partial_ot_loss
from otnsd.train import TrainConfig, fit

ROOT = Path(__file__).resolve().parent.parent


def cuda_only(test):
    """Marked ``cuda`` (gpu_check.py runs ``pytest -m cuda``) and skipped without a GPU."""
    return pytest.mark.cuda(pytest.mark.skipif(not torch.cuda.is_available(), reason="needs a GPU")(test))


TINY = dict(seed=2, n_train=96, n_test=8, voxel_scale=0.02, n_tokens=4, dim=8, subjects=(1,))
NET = {"width": 16, "n_voxel_tokens": 4, "depth": 1, "heads": 2, "dim_head": 8}
CONFIG = {"subjects": [1], "loss": {"mse": {}, "ot": {"lam": 0.5}}, "epochs": 2, "batch_size": 16, "val_images": 16,
          "encoder": NET}


def test_gpu_check_quick_runs_every_part_on_cpu(tmp_path):
    """`--device cpu --quick`: every part runs and reports, the CUDA-only ones say they were not
    measured, and the report and the benchmarks' JSON are written, so the script cannot rot."""
    proc = subprocess.run([sys.executable, str(ROOT / "benchmarks" / "gpu_check.py"), "--device", "cpu", "--quick",
                           "--out", str(tmp_path)], cwd=ROOT, capture_output=True, text=True, timeout=300,
                          env={**os.environ, "PYTHONPATH": str(ROOT)})
    assert proc.returncode == 0, proc.stdout[-4000:] + proc.stderr[-2000:]
    report = (tmp_path / "gpu_check.md").read_text()
    for part in ("versions", "bench_ot", "bench_train_small", "bench_train_paper", "host_syncs", "cuda_tests"):
        assert f"## {part}: ok" in report, part
    assert "host syncs: not measured on cpu" in report
    assert "skipped" in report  # the CUDA tests, without a GPU
    ot_rows = json.loads((tmp_path / "bench_ot.json").read_text())["rows"]
    assert {r["solver"].split(" (")[0] for r in ot_rows} == {"POT partial_wasserstein2", "exact", "sinkhorn", "auto", "mse"}
    paper = json.loads((tmp_path / "bench_train_paper.json").read_text())
    assert paper["preset"] == "paper" and [r["loss"] for r in paper["rows"]] == ["mse", "ot auto"]
    assert "profile: auto solver" in report and "Self CPU" in report
    assert "## goals" in report and "(not a GPU)" in report


@cuda_only
@pytest.mark.parametrize("level,shape", [("sample", (64, 96)), ("token", (4, 32, 24))])
@pytest.mark.parametrize("solver", ["exact", "sinkhorn"])
def test_loss_and_gradient_on_gpu_match_cpu(level, shape, solver):
    g = torch.Generator().manual_seed(0)
    y = torch.randn(shape, generator=g)
    x = y + torch.randn(shape, generator=g)
    out = {}
    for device in ("cpu", "cuda"):
        xd = x.to(device).requires_grad_(True)
        loss = partial_ot_loss(xd, y.to(device), 0.5, level=level, solver=solver)
        loss.backward()
        assert loss.device.type == device
        out[device] = (float(loss), xd.grad.cpu())
    rel = 1e-5 if solver == "exact" else 1e-3
    assert out["cuda"][0] == pytest.approx(out["cpu"][0], rel=rel)
    torch.testing.assert_close(out["cuda"][1], out["cpu"][1], rtol=10 * rel, atol=1e-6)


@cuda_only
def test_fit_on_gpu_follows_the_cpu_loss_curve(tmp_path):
    data = SimulatedNSD(**TINY)
    cpu = fit(TrainConfig(**CONFIG), data, tmp_path / "cpu", progress=False, device="cpu")
    gpu = fit(TrainConfig(**CONFIG), data, tmp_path / "gpu", progress=False, device="cuda")
    assert next(gpu.model.parameters()).device.type == "cpu"  # returned on the CPU, as documented
    for key in ("train_loss", "val_loss", "val_mse"):
        assert gpu.history[key] == pytest.approx(cpu.history[key], rel=2e-3), key


@cuda_only
def test_one_process_torchrun_trains_over_nccl(tmp_path):
    cmd = [sys.executable, "-m", "torch.distributed.run", "--standalone", "--nproc_per_node=1", "-m", "otnsd.train",
           "--data", json.dumps({**TINY, "subjects": list(TINY["subjects"])}), "--config", json.dumps(CONFIG),
           "--runs-dir", str(tmp_path / "ddp"), "--no-progress"]
    proc = subprocess.run(cmd, cwd=tmp_path, capture_output=True, text=True, timeout=300,
                          env={**os.environ, "PYTHONPATH": str(ROOT)})
    assert proc.returncode == 0, proc.stdout[-3000:] + proc.stderr[-3000:]
    assert "process group: nccl, 1 processes" in proc.stderr
    ddp = torch.load(Path(proc.stdout.strip().splitlines()[-1]) / "encoder.pt", weights_only=False)["state_dict"]
    single = fit(TrainConfig(**CONFIG), SimulatedNSD(**TINY), tmp_path / "one", progress=False, device="cuda")
    for k, v in single.model.state_dict().items():
        torch.testing.assert_close(ddp[k], v, rtol=1e-3, atol=1e-4, msg=k)
