"""Notebook parameters as users pass them: every papermill command of the README, list parameters
in their string form, JupyterLab's working directory, consistent kernelspecs, and Java asked for
before any training."""

import json
import os
import re
import shlex
import subprocess
import sys
from pathlib import Path

import pytest

from otnsd.notebook import as_list

ROOT = Path(__file__).resolve().parent.parent
NOTEBOOKS = sorted((ROOT / "notebooks").glob("[0-9]*.ipynb"))


def test_as_list_accepts_lists_and_their_string_forms():
    assert as_list([0.1, 0.5], float) == [0.1, 0.5]
    assert as_list("[0.1,0.5]", float) == [0.1, 0.5]
    assert as_list("(1, 2)", int) == [1, 2]
    assert as_list('["Face", "Body"]', str) == ["Face", "Body"]
    assert as_list("Face,Body") == ["Face", "Body"]
    assert as_list("Face") == ["Face"]
    assert as_list(0.3, float) == [0.3]
    assert as_list("0.3", float) == [0.3]
    with pytest.raises(ValueError, match="lams: every item"):
        as_list("[0.1, 'x']", float, name="lams")
    with pytest.raises(ValueError, match="cannot read"):
        as_list("[0.1, 0.5", float)


def _readme_papermill_commands():
    """Each `papermill ...` line of the README with its shell variables expanded as a user's
    shell would (the variables defined in the README's own code blocks, NSD paths made up)."""
    text = (ROOT / "README.md").read_text()
    env = {"OTNSD_DATA": "/data/nsd", "MODELS": "/models"}
    commands = []
    for line in text.splitlines():
        line = line.strip()
        m = re.match(r'^([A-Z]+)="(.*)"$', line)
        if m:
            env[m.group(1)] = re.sub(r"\$(\w+)", lambda v: env[v.group(1)], m.group(2))
            continue
        if re.match(r"^(\.venv/bin/)?papermill notebooks/", line):
            expanded = re.sub(r"\$(\w+)", lambda v: env[v.group(1)], line.split("#")[0])
            commands.append((line, shlex.split(expanded)))
    return commands


COMMANDS = _readme_papermill_commands()


def test_readme_shows_papermill_commands():
    assert len(COMMANDS) >= 8 and any("-p lams" in c for c, _ in COMMANDS)


@pytest.mark.parametrize("line,argv", COMMANDS, ids=[c for c, _ in COMMANDS])
def test_readme_papermill_command_parameters_are_accepted(line, argv, tmp_path):
    """Parse the command's `-p` values exactly as papermill's CLI does, inject them after the
    parameters cell, and run every cell up to the one that builds the data (the parameter
    handling); simulator commands then run to the end elsewhere."""
    from papermill.cli import _resolve_type
    from papermill.parameterize import parameterize_notebook
    import nbformat

    nb_path = ROOT / argv[1]
    params = {argv[i + 1]: _resolve_type(argv[i + 2]) for i, a in enumerate(argv) if a == "-p"}
    original = nbformat.read(nb_path, as_version=4)
    declared = next(c.source for c in original.cells if "parameters" in c.metadata.get("tags", []))
    undeclared = [n for n in params if not re.search(rf"^{n} = ", declared, re.M)]
    assert not undeclared, f"{nb_path.name} has no parameter {undeclared} (papermill would only warn)"
    nb = parameterize_notebook(original, params)
    code = [c.source for c in nb.cells if c.cell_type == "code"]
    cut = next(i for i, s in enumerate(code) if "setup(globals()" in s)
    setup = re.split(r"^.*setup\(globals\(\).*$", code[cut], maxsplit=1, flags=re.M)[0]  # parameter handling
    scope = {}
    exec(compile("\n".join(code[:cut]) + "\n" + setup, str(nb_path), "exec"), scope)
    for name, value in params.items():
        if isinstance(value, str) and value.startswith("["):
            assert isinstance(scope[name], list) and len(scope[name]) == value.count(",") + 1, name


def test_runs_and_figures_default_to_the_checkout_from_any_directory():
    """`jupyter lab notebooks/` starts kernels in notebooks/: they must use the checkout's runs/."""
    env = {k: v for k, v in os.environ.items() if k not in ("OTNSD_RUNS", "OTNSD_FIGURES")}
    code = "from otnsd.paths import runs_dir, figures_dir; print(runs_dir()); print(figures_dir())"
    out = subprocess.run([sys.executable, "-c", code], cwd=ROOT / "notebooks", env=env, capture_output=True, text=True, check=True)
    assert out.stdout.split() == [str(ROOT / "runs"), str(ROOT / "figures")]
    assert not (ROOT / "notebooks" / "runs").exists()


def test_notebooks_share_the_installed_kernelspec():
    from jupyter_client.kernelspec import KernelSpecManager

    installed = KernelSpecManager().get_kernel_spec("python3").display_name
    for path in NOTEBOOKS:
        spec = json.loads(path.read_text())["metadata"]["kernelspec"]
        assert (spec["name"], spec["display_name"]) == ("python3", installed), path.name


@pytest.mark.parametrize("path", [p for p in NOTEBOOKS if p.name[:2] in ("03", "04", "05", "06")], ids=lambda p: p.name)
def test_java_is_checked_before_any_training(path):
    code = ["".join(c["source"]) for c in json.loads(path.read_text())["cells"] if c["cell_type"] == "code"]
    first_train = next(i for i, s in enumerate(code) if re.search(r"\bex\.train\(", s))
    assert any(re.search(r"setup\(globals\(\), captions=", s) for s in code[:first_train])  # setup asks for Java


def test_notebook_without_java_stops_before_training(tmp_path):
    import papermill as pm

    empty = tmp_path / "bin"
    empty.mkdir()
    env_path = f"{Path(sys.executable).parent}{os.pathsep}{empty}"
    old = dict(os.environ)
    os.environ.update(PATH=env_path, OTNSD_RUNS=str(tmp_path / "runs"), OTNSD_FIGURES=str(tmp_path / "figs"))
    try:
        with pytest.raises(pm.PapermillExecutionError, match="need Java"):
            pm.execute_notebook(str(ROOT / "notebooks/04_lambda_sweep.ipynb"), str(tmp_path / "out.ipynb"),
                                progress_bar=False, kernel_name="python3", cwd=str(ROOT))
    finally:
        os.environ.clear()
        os.environ.update(old)
    assert not (tmp_path / "runs" / "train").exists()
