"""The README's "Extending otnsd" recipes, run as written: a new loss, a new dataset, a new
analysis notebook's calls."""

import os
import re
import subprocess
import sys
import textwrap
from pathlib import Path

import numpy as np

README = Path(__file__).parent.parent / "README.md"


def _recipes() -> list[str]:
    section = README.read_text().split("## Extending otnsd", 1)[1].split("\n## ", 1)[0]
    blocks = re.findall(r"```python\n(.*?)```", section, re.S)
    assert len(blocks) == 4, "README's Extending otnsd: a loss, a dataset, a parameters cell, a notebook's calls"
    return blocks


def test_new_loss_is_one_decorated_function(tmp_path):
    check = textwrap.dedent("""
        from otnsd.data import open_dataset
        from otnsd.ot import get_loss
        from otnsd.train import fit
        assert get_loss(cfg.loss).couples_samples is False  # declared per sample: never gathered
        x, y = torch.randn(4, 3, 5, requires_grad=True), torch.randn(4, 3, 5)
        get_loss("log_cosh", scale=2.0)(x, y).backward()
        assert x.grad is not None
        sim = open_dataset("simulated", seed=0, n_train=200, n_test=50, voxel_scale=0.02)
        run = fit(cfg, sim, progress=False)
        assert run.history["epoch"] == [1]
        print("ok")
    """)
    env = {**os.environ, "OTNSD_RUNS": str(tmp_path), "HF_HUB_OFFLINE": "1"}
    out = subprocess.run([sys.executable, "-c", _recipes()[0] + check], env=env, capture_output=True, text=True, timeout=600)
    assert out.returncode == 0 and out.stdout.strip().endswith("ok"), out.stderr[-3000:]


def test_new_dataset_trains_and_predicts(tmp_path):
    from otnsd.train import TrainConfig, fit

    namespace = {}
    exec(_recipes()[1], namespace)
    rng = np.random.default_rng(0)
    n_images, n_train, V, T, D = 60, 48, 30, 4, 8
    tokens = rng.standard_normal((n_images, T, D)).astype(np.float32)
    area = np.array(["V1v"] * 10 + ["FFA-1"] * 10 + ["Other"] * 10)
    data = namespace["MyFMRI"](
        rng.standard_normal((n_train, 3, V)).astype(np.float32), np.arange(n_train),
        rng.standard_normal((n_images - n_train, V)).astype(np.float32), np.arange(n_train, n_images),
        area, tokens, [[f"caption of image {i}"] for i in range(n_images)])
    run = fit(TrainConfig(epochs=1, batch_size=8, val_images=8), data, tmp_path, progress=False)
    assert run.predict_test(data, 1).shape == (n_images - n_train, T, D)
    assert data.subject(1).region_counts()["Face"] == 10 and len(data.fingerprint) == 16


def test_new_analysis_notebook_runs(tmp_path, capsys):
    _, _, parameters, calls = _recipes()
    namespace = {}
    exec(parameters, namespace)
    # as papermill would inject them: short training, a captioner that needs no training, scratch folders
    namespace.update(epochs=1, captioner="retrieval", runs_dir=str(tmp_path / "runs"), fig_dir=str(tmp_path))
    exec(calls, namespace)
    printed = capsys.readouterr().out
    assert re.search(r"^All: CIDEr \d+\.\d \[\d+\.\d, \d+\.\d\]$", printed, re.M), printed
    assert re.search(r"^Face: CIDEr ", printed, re.M)
