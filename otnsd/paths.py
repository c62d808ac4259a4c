"""Where data, trained runs and figures live: a parameter, else an environment variable, else a default.

=============  ==================  ==============================================
what           environment         default
=============  ==================  ==============================================
NSD copy       ``OTNSD_DATA``      none (the simulated NSD needs no data)
runs (cache)   ``OTNSD_RUNS``      ``runs/`` of the source checkout, else ``./runs``
figures        ``OTNSD_FIGURES``   ``figures/`` of the source checkout, else ``./figures``
=============  ==================  ==============================================
"""

from __future__ import annotations

import contextlib
import os
from pathlib import Path

_CHECKOUT = Path(__file__).resolve().parent.parent


def _resolve(given, env: str, default: Path) -> Path:
    path = Path(given) if given else Path(os.environ[env]) if os.environ.get(env) else default
    path.mkdir(parents=True, exist_ok=True)
    return path


def _default(name: str) -> Path:
    # Anchored to the checkout, not to the working directory: a kernel started by
    # `jupyter lab notebooks/` runs in notebooks/ and must find the same cache as `make figures`.
    return _CHECKOUT / name if (_CHECKOUT / "pyproject.toml").exists() else Path(name)


def figures_dir(path: str | os.PathLike | None = None) -> Path:
    """Folder for figures and tables (created if missing)."""
    return _resolve(path, "OTNSD_FIGURES", _default("figures"))


def runs_dir(path: str | os.PathLike | None = None) -> Path:
    """Folder for trained models and other cached results (created if missing)."""
    return _resolve(path, "OTNSD_RUNS", _default("runs"))


def data_dir(path: str | os.PathLike | None = None) -> Path:
    """Root of a local NSD copy; an error that says how to point to it when none is set."""
    given = path or os.environ.get("OTNSD_DATA")
    if not given:
        raise FileNotFoundError(
            "no NSD folder given: pass root= (data_root in the notebooks) or set OTNSD_DATA to the "
            "folder that holds nsddata/ and nsddata_betas/ (the simulated NSD needs neither)"
        )
    root = Path(given)
    if not root.is_dir():
        raise FileNotFoundError(f"the NSD folder {root} does not exist: pass root= or set OTNSD_DATA")
    return root


@contextlib.contextmanager
def atomic_path(path: str | os.PathLike):
    """Write ``path`` atomically: yields a temporary path beside it to write to, which replaces
    ``path`` (after an fsync) only when the block ends without error. Readers never see a
    half-written file; a crash leaves the old file (or none) and a stray temporary."""
    path = Path(path)
    tmp = path.with_name(f"{path.name}.tmp{os.getpid()}")
    try:
        yield tmp
        fd = os.open(tmp, os.O_RDONLY)
        try:
            os.fsync(fd)
        finally:
            os.close(fd)
        os.replace(tmp, path)
    finally:
        tmp.unlink(missing_ok=True)
