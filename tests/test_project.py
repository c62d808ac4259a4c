"""Paths, figure saving and notebook conventions."""

import json
from pathlib import Path

import matplotlib

matplotlib.use("Agg")
import matplotlib.pyplot as plt  # noqa: E402
import pytest  # noqa: E402

from otnsd.paths import data_dir, figures_dir, runs_dir  # noqa: E402
from otnsd.plots import savefig, use_style  # noqa: E402

NOTEBOOKS = sorted(Path(__file__).resolve().parent.parent.joinpath("notebooks").glob("[0-9]*.ipynb"))


def test_paths_follow_parameter_then_environment(tmp_path, monkeypatch):
    monkeypatch.setenv("OTNSD_RUNS", str(tmp_path / "env_runs"))
    assert runs_dir() == tmp_path / "env_runs" and runs_dir().is_dir()
    assert runs_dir(tmp_path / "given") == tmp_path / "given"
    monkeypatch.setenv("OTNSD_FIGURES", str(tmp_path / "figs"))
    assert figures_dir() == tmp_path / "figs"


def test_missing_nsd_copy_says_what_to_do(tmp_path, monkeypatch):
    monkeypatch.delenv("OTNSD_DATA", raising=False)
    with pytest.raises(FileNotFoundError, match="OTNSD_DATA"):
        data_dir()
    with pytest.raises(FileNotFoundError, match="does not exist"):
        data_dir(tmp_path / "nope")
    assert data_dir(tmp_path) == tmp_path


def test_savefig_writes_png_and_pdf(tmp_path):
    use_style()
    fig, ax = plt.subplots()
    ax.plot([0, 1], [1, 0])
    paths = savefig(fig, "demo", tmp_path)
    assert [p.name for p in paths] == ["demo.png", "demo.pdf"]
    assert all(p.stat().st_size > 0 for p in paths)
    plt.close(fig)


def test_saved_figures_are_the_same_bytes_in_another_process(tmp_path):
    """No creation date, version or random id in the PNG or PDF: a re-run that changes nothing
    leaves figures/ unchanged for git."""
    import subprocess
    import sys

    script = ("import matplotlib; matplotlib.use('Agg'); import matplotlib.pyplot as plt, numpy as np, sys\n"
              "from otnsd.plots import savefig, use_style\n"
              "use_style(); fig, (a, b) = plt.subplots(1, 2)\n"
              "a.imshow(np.arange(12.0).reshape(3, 4)); b.plot([0, 1], [1, 0], label='λ = 0.5'); b.legend()\n"
              "b.set_title('CIDEr (simulated)'); savefig(fig, 'demo', sys.argv[1])")
    for run in ("a", "b"):
        subprocess.run([sys.executable, "-c", script, str(tmp_path / run)], check=True)
    for name in ("demo.png", "demo.pdf"):
        assert (tmp_path / "a" / name).read_bytes() == (tmp_path / "b" / name).read_bytes(), name
    assert b"CreationDate" not in (tmp_path / "a" / "demo.pdf").read_bytes()


@pytest.mark.parametrize("path", NOTEBOOKS, ids=[p.name for p in NOTEBOOKS])
def test_notebook_conventions(path):
    nb = json.loads(path.read_text())
    code = [c for c in nb["cells"] if c["cell_type"] == "code"]
    tagged = [c for c in code if "parameters" in c.get("metadata", {}).get("tags", [])]
    assert len(tagged) == 1, "exactly one cell tagged `parameters` (papermill injects after it)"
    assert all(c.get("outputs") for c in code if "savefig(fig" in "".join(c["source"])), "stored outputs"
    source = "".join("".join(c["source"]) for c in code)
    assert "argparse" not in source and "/home/" not in source and "/work/" not in source


def test_papermill_runs_notebook_01_with_parameters(tmp_path, monkeypatch):
    """The README's headless call, with parameters, from the repository root."""
    import papermill as pm

    root = Path(__file__).resolve().parent.parent
    monkeypatch.chdir(root)
    monkeypatch.setenv("OTNSD_FIGURES", str(tmp_path / "figs"))
    out = tmp_path / "out.ipynb"
    pm.execute_notebook("notebooks/01_theory_mse_in_ot.ipynb", str(out), parameters={"seed": 1, "n_samples": 16, "heatmap_n": 8,
                        "eps_rels": [0.5, 0.05, 0.01]}, progress_bar=False, kernel_name="python3")
    import nbformat

    nb = nbformat.read(out, as_version=4)
    text = "".join(o.get("text", "") for c in nb.cells if c.cell_type == "code" for o in c.outputs)
    assert "16 pairs of" in text and "identity = MSE: True" in text
    assert sorted(p.name for p in (tmp_path / "figs").iterdir()) == sorted(
        f"01_{n}.{e}" for n in ("ot_over_mse_vs_lambda", "entropic_error_vs_eps", "plans") for e in ("png", "pdf"))


@pytest.mark.notebooks
def test_papermill_lambda_sweep_with_lam_03(tmp_path, monkeypatch):
    """`papermill notebooks/04_lambda_sweep.ipynb out.ipynb -p lam 0.3` from the repository root (a
    one-epoch, one-region grid so the test stays short), with the list parameters in the string
    form papermill's command line hands over (`-p lams "[0.3,1.0]" -p regions Face`)."""
    import os

    import nbformat
    import papermill as pm

    root = Path(__file__).resolve().parent.parent
    monkeypatch.chdir(root)
    monkeypatch.setenv("OTNSD_FIGURES", str(tmp_path / "figs"))
    monkeypatch.setenv("OTNSD_RUNS", os.environ.get("OTNSD_RUNS") or str(tmp_path / "runs"))  # reuse a shared captioner
    out = tmp_path / "out.ipynb"
    pm.execute_notebook("notebooks/04_lambda_sweep.ipynb", str(out), progress_bar=False, kernel_name="python3",
                        parameters={"lam": 0.3, "lams": "[0.3,1.0]", "regions": "Face", "fig_metrics": '["CIDEr"]',
                                    "epochs": 1, "n_boot": 0})
    nb = nbformat.read(out, as_version=4)
    text = "".join(o.get("text", "") for c in nb.cells if c.cell_type == "code" for o in c.outputs)
    assert "λ grid [0.3, 1.0]" in text and "metrics at λ = 0.3:" in text
    assert "MSE+OT(λ)  Face      0.3" in text and "OT(λ)      All       1.0" in text
    assert sorted(p.name for p in (tmp_path / "figs").iterdir()) == sorted(
        ["04_fig5_lambda_sweep.png", "04_fig5_lambda_sweep.pdf", "04_lambda_seeds.png", "04_lambda_seeds.pdf"]
        + [f"tableA1_lambda_sweep.{e}" for e in ("csv", "md", "tex")])
    assert "shape: rise not tested" in text  # no λ below 0.3 in this grid: only the plateau is tested


def test_case_study_figure_lays_out_every_caption():
    from otnsd.plots import case_study_figure

    columns = {"Ground truth": ["a dog in a park", "a red car"], "Face region": ["a cat", "a long caption " * 6]}
    fig = case_study_figure([3, 7], columns)
    texts = [t.get_text() for t in fig.axes[0].texts]
    assert "Ground truth" in texts and "a dog in a park" in texts and "image\n7" in texts
    assert any(t.count("\n") >= 2 for t in texts)  # long captions wrap
    plt.close(fig)
