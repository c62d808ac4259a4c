r"""The paper's theory, checked numerically (notebook 01): MSE is partial OT at the identity plan
(eq. 17-18), the optimal loss is never above it at :math:`\lambda = 1` and grows with
:math:`\lambda`; and how far the entropic solver is from the exact one."""

from __future__ import annotations

import warnings

import numpy as np
import torch

from ..ot import cost_matrix, mse_loss, partial_ot_loss, partial_plan


def _identity_ot(x: torch.Tensor, y: torch.Tensor, level: str) -> torch.Tensor:
    """OT loss evaluated at the identity plan gamma = I / N (per sample at token level)."""
    if level == "sample":
        C = cost_matrix(x.reshape(len(x), -1), y.reshape(len(y), -1))
        return torch.diagonal(C).mean()
    C = cost_matrix(x, y)
    return torch.diagonal(C, dim1=1, dim2=2).mean()


def ot_mse_check(x, y, lams, *, level: str = "sample", cost: str = "sqeuclidean", solver: str = "exact") -> dict:
    r"""The paper's claims, evaluated on one pair of embedding sets.

    Returns the MSE (eq. 2), the OT loss at the identity plan (eq. 17), and the optimal partial-OT
    loss for each :math:`\lambda` in ``lams`` (eq. 14), as floats, plus three verdicts:
    ``identity_equals_mse``, ``ot_below_mse`` (at :math:`\lambda = 1`) and ``monotone_in_lam``.

    Parameters
    ----------
    x, y : tensor or array, shape (N, D) or (N, T, D)
    lams : sequence of floats in (0, 1], increasing
    """
    x = torch.as_tensor(x, dtype=torch.float64)
    y = torch.as_tensor(y, dtype=torch.float64)
    lams = [float(v) for v in lams]
    mse = float(mse_loss(x, y, level=level))
    identity = float(_identity_ot(x, y, level)) if cost == "sqeuclidean" else float("nan")
    ot = np.array([float(partial_ot_loss(x, y, lam, level=level, cost=cost, solver=solver)) for lam in lams])
    full = ot[lams.index(1.0)] if 1.0 in lams else float(partial_ot_loss(x, y, 1.0, level=level, cost=cost, solver=solver))
    return {
        "lams": np.array(lams),
        "mse": mse,
        "ot_identity": identity,
        "ot": ot,
        "identity_equals_mse": bool(abs(identity - mse) <= 1e-9 * max(1.0, abs(mse))),
        "ot_below_mse": bool(full <= mse * (1 + 1e-12)),
        "monotone_in_lam": bool(np.all(np.diff(ot) >= -1e-12 * max(1.0, abs(ot).max()))),
    }


def entropic_error(C, lam: float, eps_rels) -> np.ndarray:
    """Relative error of the entropic loss against the exact one, for each relative epsilon.

    Returns ``(L_sinkhorn - L_exact) / L_exact`` for each ``eps_rel`` (``eps = eps_rel * std(C)``).
    The solver runs to a marginal tolerance of 1e-6 or 20000 sweeps, whichever comes first; at
    the smallest eps the sweep cap may bind, and what remains unconverged is part of the error.
    """
    C = torch.as_tensor(C, dtype=torch.float64)
    exact = float((partial_plan(C, lam, solver="exact") * C).sum())
    errors = []
    for r in eps_rels:
        with warnings.catch_warnings():
            warnings.filterwarnings("ignore", message="entropic partial OT stopped")
            plan = partial_plan(C, lam, solver="sinkhorn", eps_rel=float(r), tol=1e-6, max_iter=20000)
        errors.append((float((plan * C).sum()) - exact) / exact)
    return np.array(errors)
