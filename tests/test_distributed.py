"""Data-parallel training over two CPU processes (gloo) equals one process on the whole batch."""

import json
import os
import subprocess
import sys
from pathlib import Path

import pytest
import torch

from otnsd.data import SimulatedNSD
from otnsd.ot import get_loss
from otnsd.train import TrainConfig, fit

HERE = Path(__file__).resolve().parent


def _torchrun(args, tmp_path, nproc=2):
    env = {**os.environ, "OMP_NUM_THREADS": "1", "PYTHONPATH": str(HERE.parent)}
    torchrun = [sys.executable, "-m", "torch.distributed.run", "--standalone", f"--nproc_per_node={nproc}"]
    proc = subprocess.run(torchrun + args, cwd=tmp_path, env=env, capture_output=True, text=True, timeout=300)
    assert proc.returncode == 0, proc.stdout[-3000:] + proc.stderr[-3000:]
    return proc


def test_loss_and_gradients_equal_one_process_on_the_whole_batch(tmp_path):
    sys.path.insert(0, str(HERE))
    try:
        import ddp_worker
    finally:
        sys.path.remove(str(HERE))
    _torchrun([str(HERE / "ddp_worker.py"), str(tmp_path / "out.pt")], tmp_path)
    got = torch.load(tmp_path / "out.pt", weights_only=False)
    x, y = ddp_worker.batch()
    for name, spec in ddp_worker.LOSSES.items():
        net = ddp_worker.model()
        loss = get_loss(spec)(net(x, 1), y)
        loss.backward()
        assert got[name]["loss"] == pytest.approx(float(loss.detach()), rel=1e-5), name
        for k, p in net.named_parameters():
            torch.testing.assert_close(got[name]["grads"][k], p.grad, rtol=1e-4, atol=1e-6, msg=f"{name}: {k}")
    # what each step gathered follows the losses' declarations, the user-registered ones included
    coupling = {"ot sample", "mse + ot", "infonce", "spread"}
    for name in ddp_worker.LOSSES:
        assert got[name]["gathered"] == ([(4, 4, 8), (4, 4, 8)] if name in coupling else []), name
    assert got["l1"]["seen"] == [4]  # its own slice of the 8 samples
    assert got["spread"]["seen"] == [8]  # the whole batch


def test_a_loss_without_a_declaration_is_refused():
    from otnsd import distributed as dd

    with pytest.raises(TypeError, match="does not declare couples_samples"):
        dd.step_loss(lambda p, t: (p - t).pow(2).mean(), torch.zeros(2, 3), torch.ones(2, 3))


TINY = dict(seed=2, n_train=96, n_test=8, voxel_scale=0.02, n_tokens=4, dim=8, subjects=(1, 2))
NET = {"width": 16, "n_voxel_tokens": 4, "depth": 1, "heads": 2, "dim_head": 8}


@pytest.mark.parametrize("subjects,nproc", [([1], 2), ([1, 2], 2), ([1], 1)], ids=["single", "cross", "one-process"])
def test_torchrun_training_matches_one_process(tmp_path, subjects, nproc):
    """Two processes, and one process in a process group (DDP over a group of one: the path a
    single GPU takes through NCCL in benchmarks/gpu_check.py), train what one plain process does."""
    config = {"subjects": subjects, "loss": {"mse": {}, "ot": {"lam": 0.5}}, "epochs": 2, "batch_size": 16,
              "val_images": 16, "encoder": NET}
    proc = _torchrun(["-m", "otnsd.train", "--data", json.dumps(TINY), "--config", json.dumps(config),
                      "--runs-dir", str(tmp_path / "ddp"), "--no-progress"], tmp_path, nproc)
    assert f"process group: gloo, {nproc} processes" in proc.stderr
    run = Path(proc.stdout.strip().splitlines()[-1])
    assert run.parent == tmp_path / "ddp" / "train" and (run / "DONE").exists()
    ddp_weights = torch.load(run / "encoder.pt", weights_only=False)["state_dict"]
    single = fit(TrainConfig(**config), SimulatedNSD(**TINY), runs_dir=tmp_path / "one", progress=False)
    assert single.run_dir.name == run.name  # the same configuration, the same cache key
    for k, v in single.model.state_dict().items():
        torch.testing.assert_close(ddp_weights[k], v, rtol=1e-4, atol=1e-5, msg=k)
    ddp_history = json.loads((run / "history.json").read_text())
    assert ddp_history["train_loss"] == pytest.approx(single.history["train_loss"], rel=1e-4)
