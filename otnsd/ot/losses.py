"""The losses: partial OT (eq. 14), MSE (eq. 2, equal to OT at the identity plan), InfoNCE, and the
robust baselines trimmed MSE (partial OT on the diagonal) and Huber."""

from __future__ import annotations

import torch
import torch.nn.functional as F

from ._checks import COSTS, SOLVERS, _SOLVER_OPTIONS, _as_tensors, _check_choice, _check_lam, _check_pair, _check_positive
from .cost import _check_cost_range, cost_matrix
from .solvers import partial_plan


def _as_point_clouds(x, y, level: str) -> tuple[torch.Tensor, torch.Tensor]:
    """Checked tensors as the point clouds of ``level``: one (N, F) cloud of flattened samples
    ("sample"), or B clouds (B, T, D) of tokens ("token"). The last dimension is the point's."""
    x, y = _as_tensors(x, y)
    _check_pair(x, y, level)
    if level == "sample":
        return x.reshape(x.shape[0], -1), y.reshape(y.shape[0], -1)
    return x, y


def partial_ot_loss(
    x: torch.Tensor,
    y: torch.Tensor,
    lam: float = 1.0,
    *,
    level: str = "sample",
    cost: str = "sqeuclidean",
    solver: str = "auto",
    return_plan: bool = False,
    **solver_kwargs,
) -> torch.Tensor | tuple[torch.Tensor, torch.Tensor]:
    r"""Partial-OT alignment loss :math:`L_{OT} = \sum_{ij}\gamma^*_{ij} C_{ij}` (eq. 14).

    Parameters
    ----------
    x : tensor, shape (N, D), (N, T, D) or (N, ...)
        Predicted (brain) embeddings; gradients flow into it.
    y : tensor, same shape as ``x``
        Target (image) embeddings.
    lam : float in (0, 1]
        Mass ratio :math:`\lambda` (eq. 11).
    level : {"sample", "token"}
        "sample" — the paper's equations: one N x N problem between the samples of the batch, each
        sample flattened to one vector. "token" — the paper's released code: one T x T problem per
        sample between its brain tokens and its image tokens, loss averaged over the batch
        (needs 3-D input).
    cost : {"sqeuclidean", "euclidean"}
        Squared distance (paper eq. 9) or the plain distance (released code, ``torch.cdist``).
    solver : {"exact", "sinkhorn", "auto"}
        See :func:`partial_plan`.
    return_plan : bool
        Also return the plan ``gamma`` (shape (N, N) or (B, T, T)).
    **solver_kwargs
        Passed to :func:`partial_plan` (``eps``, ``eps_rel``, ``tol``, ``max_iter``).

    Returns
    -------
    loss : scalar tensor
        Differentiable in ``x`` and ``y`` with the plan held constant (envelope theorem); no
        gradient flows through the solver.

    Notes
    -----
    With ``gamma = I / N`` and ``cost="sqeuclidean"`` the loss equals :func:`mse_loss` at the same
    level. With ``lam = 1`` the identity is feasible, so the optimal (exact) loss is never above MSE.
    """
    xs, ys = _as_point_clouds(x, y, level)
    lam = _check_lam(lam)
    _check_choice("cost", cost, COSTS)
    _check_choice("solver", solver, SOLVERS)
    unknown = set(solver_kwargs) - set(_SOLVER_OPTIONS)
    if unknown:
        raise ValueError(f"unknown solver option(s) {sorted(unknown)}; choose from {', '.join(_SOLVER_OPTIONS)}")
    C = cost_matrix(xs, ys, cost)
    _check_cost_range(C, xs)
    gamma = partial_plan(C.detach(), lam, solver=solver, **solver_kwargs)
    loss = (gamma * C).sum(dim=(-2, -1)).mean()  # one problem per cloud, averaged
    return (loss, gamma) if return_plan else loss


def mse_loss(x: torch.Tensor, y: torch.Tensor, *, level: str = "sample") -> torch.Tensor:
    r"""Mean squared error of eq. 2: :math:`\frac{1}{N}\sum_i \|x_i - y_i\|^2`.

    Normalised per point, so that it equals :func:`partial_ot_loss` evaluated at
    :math:`\gamma = I/N` with the squared cost: at sample level a point is one (flattened) sample,
    at token level one token, and the token-level value is averaged over the batch. Both levels give
    the same number up to the factor T: ``mse(level="sample") == T * mse(level="token")``.
    This is ``torch.nn.functional.mse_loss`` times the per-point dimension.

    Parameters
    ----------
    x, y : tensor, shape (N, D) or (N, T, D)
    level : {"sample", "token"}
    """
    xs, ys = _as_point_clouds(x, y, level)
    return (xs - ys).pow(2).sum(-1).mean()


def infonce_loss(
    x: torch.Tensor, y: torch.Tensor, *, temperature: float = 0.07
) -> torch.Tensor:
    r"""CLIP-style symmetric InfoNCE between paired samples.

    Each sample is flattened and L2-normalised; with logits :math:`s_{ij} = x_i^\top y_j / \tau`,
    the loss is the mean of the cross-entropies of rows and of columns against the diagonal
    (Radford et al. 2021; van den Oord et al. 2018).

    Parameters
    ----------
    x, y : tensor, shape (N, ...)
    temperature : float > 0
    """
    xs, ys = _as_point_clouds(x, y, "sample")
    _check_positive("temperature", temperature)
    logits = F.normalize(xs, dim=1) @ F.normalize(ys, dim=1).T / temperature
    target = torch.arange(xs.shape[0], device=xs.device)
    return 0.5 * (F.cross_entropy(logits, target) + F.cross_entropy(logits.T, target))




def trimmed_mse_loss(x: torch.Tensor, y: torch.Tensor, lam: float = 1.0, *, level: str = "sample") -> torch.Tensor:
    r"""Trimmed MSE: partial OT restricted to the identity pairing, a robust baseline for it.

    With per-point errors :math:`e_i = \|x_i - y_i\|^2` and mass :math:`\lambda`, the loss is

    .. math:: \min_{g} \sum_i g_i e_i \quad\text{s.t.}\quad 0 \le g_i \le 1/N,\; \sum_i g_i = \lambda,

    i.e. the :math:`\lfloor \lambda N \rfloor` smallest errors with weight :math:`1/N` (and the next
    one with the remainder): the value of :func:`partial_ot_loss` when the plan may only use the
    diagonal. It equals :func:`mse_loss` at :math:`\lambda = 1` and is never below the partial-OT
    loss with the squared cost. Points are samples (``level="sample"``, one trimming over the
    batch) or the tokens of each sample (``level="token"``, averaged over the batch).

    Parameters
    ----------
    x, y : tensor, shape (N, D) or (N, T, D)
    lam : float in (0, 1], the share of the mass kept
    level : {"sample", "token"}
    """
    xs, ys = _as_point_clouds(x, y, level)
    lam = _check_lam(lam)
    e = (xs - ys).pow(2).sum(-1)
    e = e.unsqueeze(0) if level == "sample" else e  # (clouds, points)
    n = e.shape[1]
    ranks = torch.arange(n, device=e.device, dtype=e.dtype)
    weight = (lam * n - ranks).clamp(0, 1) / n  # 1/N for the smallest errors, the remainder for the next
    return (e.sort(dim=1).values * weight).sum(1).mean()


def huber_loss(x: torch.Tensor, y: torch.Tensor, *, delta: float = 1.0, level: str = "sample") -> torch.Tensor:
    r"""Huber loss on the coordinates, scaled to equal :func:`mse_loss` where every residual is small.

    Each coordinate's residual :math:`r` costs :math:`r^2` if :math:`|r| \le \delta`, else
    :math:`2\delta|r| - \delta^2` (twice ``torch.nn.functional.huber_loss``); costs are summed over a
    point's coordinates and averaged over points, as :func:`mse_loss` does. A per-sample robust
    baseline: large residuals (lapsed or mislabelled trials) pull linearly, not quadratically.

    Parameters
    ----------
    x, y : tensor, shape (N, D) or (N, T, D)
    delta : float > 0, where the cost turns from quadratic to linear
    level : {"sample", "token"}
    """
    xs, ys = _as_point_clouds(x, y, level)
    _check_positive("delta", delta)
    return 2 * F.huber_loss(xs, ys, delta=float(delta), reduction="none").sum(-1).mean()
