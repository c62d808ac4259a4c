"""Input checks shared by the solvers, the losses and the registry: each says what is wrong and
what to do."""

from __future__ import annotations

import math

import numpy as np
import torch


LEVELS = ("sample", "token")
COSTS = ("sqeuclidean", "euclidean")
SOLVERS = ("exact", "sinkhorn", "auto")
_SOLVER_OPTIONS = ("eps", "eps_rel", "tol", "max_iter", "check_every")


def _check_choice(name: str, value: str, allowed: tuple[str, ...]) -> None:
    if value not in allowed:
        raise ValueError(f"unknown {name} {value!r}; choose one of {', '.join(map(repr, allowed))}")


def _check_number(name: str, value) -> float:
    # bools and strings would be coerced silently (and change a cache key): refuse them
    if isinstance(value, (bool, np.bool_)) or not isinstance(value, (int, float, np.integer, np.floating)):
        raise ValueError(f"{name} must be a number; got {value!r} of type {type(value).__name__}")
    return float(value)


def _check_lam(lam: float) -> float:
    lam = _check_number("lam", lam)
    if not (0.0 < lam <= 1.0) or math.isnan(lam):
        raise ValueError(
            f"lam is the fraction of mass to transport and must lie in (0, 1]; got {lam}. "
            "Use lam=1 for full OT, e.g. lam=0.5 to transport half the mass."
        )
    return lam


def _check_positive(name: str, value) -> float:
    value = _check_number(name, value)
    if not value > 0:
        raise ValueError(f"{name} must be positive; got {value}")
    return value


def _check_finite(name: str, t: torch.Tensor) -> None:
    # A finite sum proves every entry finite; only an overflowing or NaN sum needs the full check.
    if bool(torch.isfinite(t.sum())) or torch.isfinite(t).all():
        return
    n_bad = int((~torch.isfinite(t)).sum())
    raise ValueError(
        f"{name} holds {n_bad} NaN or infinite values; clean the input first "
        "(e.g. drop invalid voxels or check the encoder for overflow)."
    )


def _as_tensors(x, y) -> tuple[torch.Tensor, torch.Tensor]:
    """Tensors as they are; NumPy arrays become tensors (float64 stays float64, else float32), nested
    lists tensors of torch's default dtype, as ``torch.tensor`` makes them."""
    def convert(name, v):
        if isinstance(v, torch.Tensor):
            return v
        if isinstance(v, (np.ndarray, list, tuple)):
            a = np.asarray(v)
            if a.dtype.kind not in "biuf":
                raise ValueError(f"{name} must hold numbers; got an array of dtype {a.dtype}")
            keep64 = isinstance(v, np.ndarray) and a.dtype == np.float64
            return torch.from_numpy(np.ascontiguousarray(a, dtype=np.float64 if keep64 else np.float32)).to(
                torch.float64 if keep64 else torch.get_default_dtype())
        raise ValueError(f"{name} must be a torch tensor (or a NumPy array); got {type(v).__name__}")

    return convert("x", x), convert("y", y)


def _check_solver_options(eps, eps_rel, tol, max_iter, check_every) -> None:
    if eps is not None and not _check_number("eps", eps) > 0:
        raise ValueError(f"eps must be positive (or None to use eps_rel); got {eps}")
    for name, value in (("eps_rel", eps_rel), ("tol", tol)):
        if not _check_number(name, value) > 0:
            raise ValueError(f"{name} must be positive; got {value} (a smaller value makes the entropic plan sharper)")
    for name, value in (("max_iter", max_iter), ("check_every", check_every)):
        if isinstance(value, bool) or not isinstance(value, (int, np.integer)) or value < 1:
            raise ValueError(f"{name} must be a positive integer; got {value!r}")


def _check_pair(x: torch.Tensor, y: torch.Tensor, level: str) -> None:
    _check_choice("level", level, LEVELS)
    if not (x.is_floating_point() and y.is_floating_point()):
        raise ValueError(f"x and y must be floating-point tensors; got {x.dtype} and {y.dtype}")
    if x.shape != y.shape:
        raise ValueError(
            f"x and y must have the same shape (paired brain and image embeddings); "
            f"got x {tuple(x.shape)} and y {tuple(y.shape)}"
        )
    if level == "token" and x.dim() != 3:
        raise ValueError(
            f"level='token' needs inputs of shape (B, T, D) (tokens per sample); got {x.dim()}-D "
            f"input of shape {tuple(x.shape)}. Use level='sample' for (N, D) embeddings."
        )
    if level == "sample" and x.dim() < 2:
        raise ValueError(f"level='sample' needs inputs of shape (N, ...); got shape {tuple(x.shape)}")
    if x.shape[0] == 0 or x[0].numel() == 0:
        raise ValueError(f"empty input of shape {tuple(x.shape)}")
    _check_finite("x", x)
    _check_finite("y", y)


