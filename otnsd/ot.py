r"""Partial optimal transport between brain and image embeddings (paper eq. 9-14).

Problem
-------
Given brain embeddings :math:`x_1..x_N` and image embeddings :math:`y_1..y_M`, the cost is

.. math:: C_{ij} = \|x_i - y_j\|^2 \quad\text{(eq. 9, ``cost="sqeuclidean"``)}

or the plain distance :math:`\|x_i - y_j\|` (``cost="euclidean"``, what the paper's released code
uses through ``torch.cdist``). With uniform weights :math:`a = \mathbf{1}/N`, :math:`b = \mathbf{1}/M`
(eq. 10) and transported mass :math:`m = \lambda \min(\sum a, \sum b)` (eq. 11), the partial plan is

.. math::

    \gamma^* = \arg\min_{\gamma \ge 0} \langle \gamma, C \rangle
    \quad\text{s.t.}\quad \gamma \mathbf{1} \le a,\; \gamma^\top \mathbf{1} \le b,\;
    \mathbf{1}^\top \gamma \mathbf{1} = m                           \qquad\text{(eq. 12-13)}

and the loss is :math:`L_{OT} = \sum_{ij} \gamma^*_{ij} C_{ij}` (eq. 14). Gradients follow the
envelope theorem: :math:`\gamma^*` is held constant and the gradient flows through :math:`C` only.

Two levels
----------
``level="sample"`` (the paper's text): one N x N problem between the N samples of a batch, each
sample's features flattened. ``level="token"`` (the released code): one T x T problem per sample
between its T brain tokens and its T image tokens; the per-sample losses are averaged.

With :math:`\gamma = I/N`, :math:`L_{OT}` equals :func:`mse_loss` exactly at either level (the paper's
eq. 17-18); since the identity is feasible when :math:`\lambda = 1`, exact OT is then never above MSE.

Solvers
-------
``"exact"``: POT's network simplex on the partial problem (``ot.partial.partial_wasserstein``,
float64, on the CPU). ``"sinkhorn"``: a batched, log-domain entropic solver in torch on the input's
device; block-coordinate ascent on the dual of the entropic problem, which is Dykstra's algorithm
for the three KL projections of Benamou et al. (2015). ``"auto"``: the faster of the two for the
problem's size and device (see :func:`choose_solver`).

References
----------
.. [1] Benamou, Carlier, Cuturi, Nenna, Peyré (2015). Iterative Bregman projections for regularized
   transportation problems. SIAM J. Sci. Comput. 37(2).
.. [2] Chapel, Alaya, Gasso (2020). Partial optimal transport with applications on positive-unlabeled
   learning. NeurIPS.
.. [3] Flamary et al. (2021). POT: Python Optimal Transport. JMLR 22(78).
"""

from __future__ import annotations

import inspect
import math
import os
import warnings
from collections.abc import Mapping
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from typing import Any, Callable

import numpy as np
import torch
import torch.nn.functional as F

__all__ = [
    "cost_matrix",
    "partial_plan",
    "partial_ot_loss",
    "mse_loss",
    "infonce_loss",
    "choose_solver",
    "get_loss",
    "register_loss",
    "available_losses",
    "LossTerm",
    "loss_terms",
    "loss_dict",
    "LEVELS",
    "COSTS",
    "SOLVERS",
]

LEVELS = ("sample", "token")
COSTS = ("sqeuclidean", "euclidean")
SOLVERS = ("exact", "sinkhorn", "auto")
_SOLVER_OPTIONS = ("eps", "eps_rel", "tol", "max_iter", "check_every")

# From this size on, the entropic solver beats POT's dummy-point network simplex for partial
# problems on a CPU (benchmarks/bench_ot.py; the README has the table).
_AUTO_MIN_N_CPU = 512
# eps-scaling: each stage divides eps by this factor, from std(C) down to the target
_EPS_STEP = 4.0
# absorb the scalings into the potentials once one of them leaves [e^-30, e^30]
_ABSORB_LOG = 30.0


# --------------------------------------------------------------------------------------------
# input checks
# --------------------------------------------------------------------------------------------
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


# --------------------------------------------------------------------------------------------
# cost
# --------------------------------------------------------------------------------------------
def cost_matrix(x: torch.Tensor, y: torch.Tensor, cost: str = "sqeuclidean") -> torch.Tensor:
    r"""Pairwise cost between two point clouds (eq. 9).

    Parameters
    ----------
    x : tensor, shape (N, D) or (B, N, D)
    y : tensor, shape (M, D) or (B, M, D)
    cost : {"sqeuclidean", "euclidean"}
        :math:`\|x_i - y_j\|^2` or :math:`\|x_i - y_j\|`.

    Returns
    -------
    C : tensor, shape (N, M) or (B, N, M), in the dtype of ``x``
        Differentiable in ``x`` and ``y``; the Euclidean cost has a zero (not NaN) gradient where
        two points coincide.

    Notes
    -----
    Squared distances use the matmul identity :math:`\|x\|^2 + \|y\|^2 - 2 x^\top y` (clamped at
    0), which cancels catastrophically when the norms dwarf the distances (float32 embeddings far
    from the origin). Both clouds are therefore shifted by the same centre (distances do not
    change) and the identity is evaluated in float64; the result is cast back to ``x``'s dtype.
    """
    _check_choice("cost", cost, COSTS)
    work = torch.float32 if x.device.type == "mps" else torch.float64  # MPS has no float64
    centre = 0.5 * (x.detach().mean(-2, keepdim=True) + y.detach().mean(-2, keepdim=True))
    xw, yw = (x - centre).to(work), (y - centre).to(work)
    x2 = (xw * xw).sum(-1, keepdim=True)
    y2 = (yw * yw).sum(-1, keepdim=True).transpose(-1, -2)
    sq = torch.baddbmm(x2 + y2, xw, yw.transpose(-1, -2), alpha=-2) if x.dim() == 3 else torch.addmm(
        x2 + y2, xw, yw.T, alpha=-2
    )
    sq = sq.clamp_min(0)
    if cost == "euclidean":
        # sqrt has an infinite derivative at 0: route zeros through a constant branch.
        positive = sq > 0
        sq = torch.where(positive, torch.sqrt(torch.where(positive, sq, torch.ones_like(sq))), 0.0)
    return sq.to(x.dtype)


def _check_cost_range(C: torch.Tensor, x: torch.Tensor) -> None:
    """Finite inputs whose costs overflow the working dtype get their own message."""
    if bool(torch.isfinite(C.sum())) or torch.isfinite(C).all():
        return
    raise ValueError(
        f"the costs overflow {C.dtype} (largest |input| {float(x.detach().abs().max()):.3g}): the inputs are "
        "finite but their squared distances are not representable; rescale the embeddings (e.g. "
        "normalise them) or pass float64 tensors"
    )


# --------------------------------------------------------------------------------------------
# plans
# --------------------------------------------------------------------------------------------
def _exact_plan_np(C: np.ndarray, lam: float) -> np.ndarray:
    import ot  # POT; imported here so that `import otnsd` stays light

    n, m = C.shape
    a = np.full(n, 1.0 / n)
    b = np.full(m, 1.0 / m)
    # The mass is taken from the float64 weights themselves so it is always feasible.
    mass = lam * min(a.sum(), b.sum())
    if lam == 1.0 and n == m:
        # Full, balanced transport: the plain network simplex, no dummy points needed.
        return ot.emd(a, b, C)
    # POT rejects m equal to the total mass by a rounding hair; stay a hair inside.
    mass = min(mass, (1.0 - 1e-12) * min(a.sum(), b.sum()))
    return ot.partial.partial_wasserstein(a, b, C, m=mass)


# Below this many cost entries per problem, threads cost more than they save.
_THREADED_MIN_SIZE = 128 * 128
_POOL: ThreadPoolExecutor | None = None


def _cpu_workers() -> int:
    return max(1, min(os.cpu_count() or 1, torch.get_num_threads()))


def _pool() -> ThreadPoolExecutor:
    global _POOL
    if _POOL is None:
        _POOL = ThreadPoolExecutor(_cpu_workers(), thread_name_prefix="otnsd-exact")
    return _POOL


def _exact_plan(C: torch.Tensor, lam: float) -> torch.Tensor:
    C_np = C.detach().to("cpu", torch.float64).numpy()
    if C_np.ndim == 2:
        plan = _exact_plan_np(C_np, lam)
    elif len(C_np) > 1 and C_np[0].size >= _THREADED_MIN_SIZE and _cpu_workers() > 1:
        # POT's network simplex releases the GIL: solve the batch's problems on all cores.
        plan = np.stack(list(_pool().map(lambda c: _exact_plan_np(c, lam), C_np)))
    else:
        plan = np.stack([_exact_plan_np(c, lam) for c in C_np])
    return torch.from_numpy(plan).to(device=C.device, dtype=C.dtype)


def _sinkhorn_plan(
    C: torch.Tensor,
    lam: float,
    eps: float | None,
    eps_rel: float,
    tol: float,
    max_iter: int,
    check_every: int,
) -> torch.Tensor:
    """Batched entropic partial OT: scaling iterations with log-domain absorption and eps-scaling.

    Block-coordinate ascent on the dual of
    ``min <gamma, C> - eps H(gamma)`` s.t. rows <= a, columns <= b, total mass = m,
    whose potentials (F <= 0 on rows, G <= 0 on columns, H free for the mass) give
    ``gamma = exp((F + G + H - C) / eps)``. Each sweep is two batched mat-vec products on the
    kernel; the potentials are absorbed into the kernel whenever the scalings grow (Schmitzer 2019),
    and eps is lowered geometrically from the spread of C to its target, warm-starting each stage.
    For lam = 1 the constraints are the usual equalities and the sweep is plain Sinkhorn.
    """
    squeeze = C.dim() == 2
    C = C.detach()
    if squeeze:
        C = C.unsqueeze(0)
    work_dtype = torch.float64 if C.dtype == torch.float64 else torch.float32
    C = C.to(work_dtype)
    B, n, m = C.shape
    C = C - C.amin(dim=(1, 2), keepdim=True)  # a constant shift changes no plan
    spread = C.flatten(1).std(dim=1) if n * m > 1 else torch.zeros(B, dtype=work_dtype, device=C.device)
    # A constant cost has no spread: every feasible plan is optimal, pick a harmless scale.
    spread = torch.where(spread > 0, spread, torch.ones_like(spread)).view(B, 1, 1)
    if eps is None:
        eps_target = eps_rel * spread
    else:
        if not eps > 0:
            raise ValueError(f"eps must be positive; got {eps}")
        eps_target = torch.full_like(spread, float(eps))
    balanced = lam == 1.0
    a, b = 1.0 / n, 1.0 / m
    tiny = torch.finfo(work_dtype).tiny

    F = torch.zeros(B, n, 1, dtype=work_dtype, device=C.device)
    G = torch.zeros(B, 1, m, dtype=work_dtype, device=C.device)
    H = torch.zeros(B, 1, 1, dtype=work_dtype, device=C.device)

    def absorbed(F, G, H, e):
        """Kernel with the potentials absorbed, scalings u, v, s reset to 1, and the dual
        feasibility F <= 0, G <= 0 as upper bounds on the scalings (none when balanced)."""
        K = torch.exp((F + G + H - C) / e)
        bounds = (None, None) if balanced else (torch.exp(-F / e).clamp_max(1e30), torch.exp(-G / e).clamp_max(1e30))
        return (K, torch.ones_like(F), torch.ones_like(G), torch.ones_like(H), *bounds)

    # eps schedule: spread, spread/_EPS_STEP, ... down to the target (per problem, same number of stages)
    ratio = float((spread / eps_target).max())
    n_stages = max(1, int(math.ceil(math.log(ratio) / math.log(_EPS_STEP))) + 1) if ratio > 1 else 1
    for stage in range(n_stages):
        last = stage == n_stages - 1
        e = torch.maximum(eps_target, spread / _EPS_STEP**stage) if not last else eps_target
        stage_tol = tol if last else 10 * tol
        stage_iter = max_iter if last else max(50, max_iter // 20)
        # One row update in the log domain puts every row on the new eps's scale, so that no
        # row of the kernel underflows entirely when eps drops.
        row_lse = torch.logsumexp((G + H - C) / e, dim=2, keepdim=True)
        F = e * (math.log(a) - row_lse)
        if not balanced:
            F = F.clamp_max(0.0)
        K, u, v, s, u_max, v_max = absorbed(F, G, H, e)
        # Problems of the batch stop on their own: a converged one is frozen, so a batch gives
        # the same plans as solving its problems one by one.
        active = torch.ones(B, 1, 1, dtype=torch.bool, device=C.device)
        for it in range(stage_iter):
            r = u * torch.bmm(K, v.transpose(1, 2)) * s
            u_new = u * a / r.clamp_min(tiny)
            if not balanced:
                u_new = torch.minimum(u_new, u_max)
            Ktu = torch.bmm(u_new.transpose(1, 2), K)  # (B, 1, m)
            c = Ktu * v * s
            v_new = v * b / c.clamp_min(tiny)
            if not balanced:
                v_new = torch.minimum(v_new, v_max)
                s_new = lam / (Ktu * v_new).sum(dim=2, keepdim=True).clamp_min(tiny)
                s = torch.where(active, s_new, s)
            check = (it + 1) % check_every == 0 or it == stage_iter - 1
            if check:
                # marginal violation that this sweep corrected, plus any mass the kernel lost
                mass = (Ktu * v_new).sum((1, 2)) * s.view(B)
                err = (
                    (r * (u_new / u - 1)).abs().sum((1, 2))
                    + (c * (v_new / v - 1)).abs().sum((1, 2))
                    + (mass - lam).abs()
                )
            u = torch.where(active, u_new, u)
            v = torch.where(active, v_new, v)
            if check:
                active = active & (err > stage_tol * lam).view(B, 1, 1)
                # one host synchronisation every check_every sweeps
                if not bool(active.any()):
                    break
                if max(float(t.log().abs().max()) for t in (u, v, s)) > _ABSORB_LOG or not torch.isfinite(err).all():
                    # absorb the scalings into the potentials before they over- or underflow
                    F, G, H = F + e * u.log(), G + e * v.log(), H + e * s.log()
                    K, u, v, s, u_max, v_max = absorbed(F, G, H, e)
        if not last:  # warm start: the next stage starts from this stage's potentials
            F, G, H = F + e * u.log(), G + e * v.log(), H + e * s.log()
        elif bool(active.any()):
            warnings.warn(
                f"entropic partial OT stopped after max_iter={max_iter} sweeps with a marginal "
                f"violation of {float(err.max()) / lam:.1e} (tol={tol}); raise max_iter or eps_rel, "
                "or use solver='exact'",
                RuntimeWarning,
                stacklevel=3,
            )
    plan = K * (u * s) * v  # the last stage ran at eps_target
    if not torch.isfinite(plan).all():
        raise FloatingPointError(
            "the entropic solver did not stay finite; use a larger eps (or eps_rel) or float64 input"
        )
    return plan.squeeze(0) if squeeze else plan


def choose_solver(n: int, m: int, lam: float = 1.0, device: torch.device | str = "cpu") -> str:
    """The solver ``solver="auto"`` picks for an ``n x m`` problem with mass ratio ``lam``.

    On an accelerator: always "sinkhorn" (POT would force a host copy and a synchronisation).
    On a CPU: "exact" for full balanced transport (``lam == 1``, ``n == m``), which the network
    simplex solves directly, and for small partial problems; "sinkhorn" for partial problems with
    ``min(n, m) >= 512``, where the dummy-point network simplex becomes the slower one
    (benchmarks/bench_ot.py measures both).
    """
    if torch.device(device).type != "cpu":
        return "sinkhorn"
    if lam == 1.0 and n == m:
        return "exact"
    return "sinkhorn" if min(n, m) >= _AUTO_MIN_N_CPU else "exact"


def partial_plan(
    C: torch.Tensor | np.ndarray,
    lam: float,
    *,
    solver: str = "exact",
    eps: float | None = None,
    eps_rel: float = 0.01,
    tol: float = 1e-3,
    max_iter: int = 2000,
    check_every: int = 10,
) -> torch.Tensor:
    r"""Optimal partial transport plan between uniform weights (eq. 10-13).

    Solves :math:`\min_\gamma \langle \gamma, C\rangle` over :math:`\gamma \ge 0` with
    :math:`\gamma \mathbf{1} \le \mathbf{1}/N`, :math:`\gamma^\top \mathbf{1} \le \mathbf{1}/M` and
    :math:`\mathbf{1}^\top\gamma\mathbf{1} = m = \lambda \min(\sum a, \sum b)`.

    Parameters
    ----------
    C : tensor or array, shape (N, M) or (B, N, M)
        Cost matrix, or a batch of independent cost matrices.
    lam : float in (0, 1]
        Mass ratio :math:`\lambda`; 1 gives full (balanced) optimal transport.
    solver : {"exact", "sinkhorn", "auto"}
        "exact": POT's network simplex (float64, CPU, one problem at a time).
        "sinkhorn": batched log-domain entropic solver on ``C``'s device; the plan minimises
        :math:`\langle\gamma, C\rangle - \varepsilon H(\gamma)` under the same constraints.
        "auto": :func:`choose_solver`.
    eps : float, optional
        Entropic regularisation. Default: ``eps_rel`` times the standard deviation of each ``C``
        (the spread, not the mean, sets the scale at which the plan is sharp).
    eps_rel : float
        Relative regularisation used when ``eps`` is None.
    tol : float
        Stop when the L1 marginal violation is below ``tol * m`` for every problem of the batch.
    max_iter, check_every : int
        Iteration cap; convergence is checked (one host synchronisation) every ``check_every``.

    Returns
    -------
    gamma : tensor, shape like ``C``
        The plan, on ``C``'s device and in its dtype (float tensors; arrays become float64 tensors).
        It carries no gradient.

    Examples
    --------
    >>> C = torch.tensor([[0.0, 1.0], [1.0, 2.0]])
    >>> partial_plan(C, 0.5)  # half the mass, sent along the cheapest pair
    tensor([[0.5000, 0.0000],
            [0.0000, 0.0000]])
    """
    lam = _check_lam(lam)
    _check_choice("solver", solver, SOLVERS)
    _check_solver_options(eps, eps_rel, tol, max_iter, check_every)
    if isinstance(C, np.ndarray):
        C = torch.from_numpy(np.asarray(C, dtype=np.float64))
    if C.dim() not in (2, 3) or C.shape[-1] == 0 or C.shape[-2] == 0:
        raise ValueError(f"C must have shape (N, M) or (B, N, M) with N, M >= 1; got {tuple(C.shape)}")
    if not C.is_floating_point():
        C = C.double()
    _check_finite("C", C)
    if solver == "auto":
        solver = choose_solver(C.shape[-2], C.shape[-1], lam, C.device)
    with torch.no_grad():
        if solver == "exact":
            return _exact_plan(C, lam)
        return _sinkhorn_plan(C, lam, eps, eps_rel, tol, max_iter, check_every).to(C.dtype)


# --------------------------------------------------------------------------------------------
# losses
# --------------------------------------------------------------------------------------------
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


# --------------------------------------------------------------------------------------------
# registry
# --------------------------------------------------------------------------------------------
_UNDECLARED = object()


@dataclass(frozen=True)
class _Registered:
    fn: Callable[..., torch.Tensor]
    params: tuple[str, ...]  # the names a LossTerm may bind
    defaults: dict[str, Any]  # the signature's defaults, for a couples_samples function
    couples_samples: bool | Callable[[dict], bool]


_REGISTRY: dict[str, _Registered] = {}

# Checks by parameter name: a registered loss taking one of these names gets the same check.
_PARAM_CHECKS: dict[str, Callable[[Any], Any]] = {
    "lam": _check_lam,
    "temperature": lambda v: _check_positive("temperature", v),
    "level": lambda v: _check_choice("level", v, LEVELS),
    "cost": lambda v: _check_choice("cost", v, COSTS),
    "solver": lambda v: _check_choice("solver", v, SOLVERS),
}


def register_loss(name: str, *, couples_samples=_UNDECLARED, options: tuple[str, ...] = ()) -> Callable:
    """Decorator adding a loss ``f(x, y, **params) -> scalar tensor`` to :func:`get_loss`.

    Parameters
    ----------
    name : str
        The name :class:`LossTerm`, :func:`get_loss` and ``TrainConfig.loss`` know it by.
    couples_samples : bool or callable(params) -> bool
        Required. True when a sample's loss depends on the other samples of its batch (one plan
        or one softmax over the batch): data-parallel training then evaluates it on the batch
        gathered from every process. False when the loss is a mean of per-sample terms: each
        process then averages its own slice. A callable receives the loss's parameters (defaults
        filled in) and decides per configuration, as partial OT does by its ``level``.
    options : tuple of str
        Parameter names that ``f`` takes through ``**kwargs``.

    Notes
    -----
    A loss's parameters are the keyword arguments of ``f`` after ``x`` and ``y``, plus
    ``options``; :class:`LossTerm` refuses any other name.

    Examples
    --------
    >>> @register_loss("mae", couples_samples=False)
    ... def mae_loss(x, y):
    ...     return (x - y).abs().flatten(1).sum(1).mean()
    """
    if couples_samples is _UNDECLARED:
        raise TypeError(
            f"register_loss({name!r}) must declare couples_samples: True if a sample's loss depends on "
            "the other samples of its batch (data-parallel training then gathers the whole batch), "
            "False if the loss is a mean of per-sample terms, or a function of the loss's parameters "
            "returning one of these"
        )
    if not (isinstance(couples_samples, bool) or callable(couples_samples)):
        raise TypeError(f"couples_samples must be True, False or a function of the parameters; got {couples_samples!r}")

    def wrap(fn: Callable) -> Callable:
        if name in _REGISTRY:
            raise ValueError(f"a loss named {name!r} is already registered")
        params = list(inspect.signature(fn).parameters.values())[2:]
        named = [p for p in params if p.kind not in (p.VAR_KEYWORD, p.VAR_POSITIONAL)]
        _REGISTRY[name] = _Registered(
            fn=fn,
            # return_plan changes what the call returns: not a parameter of a training loss
            params=tuple(p.name for p in named if p.name != "return_plan") + tuple(options),
            defaults={p.name: p.default for p in named if p.default is not p.empty},
            couples_samples=couples_samples,
        )
        return fn

    return wrap


# sample-level OT solves one plan across the batch; token-level OT one plan inside each sample
register_loss("mse", couples_samples=False)(mse_loss)
register_loss("ot", couples_samples=lambda p: p["level"] == "sample", options=_SOLVER_OPTIONS)(partial_ot_loss)
register_loss("infonce", couples_samples=True)(infonce_loss)


def available_losses() -> tuple[str, ...]:
    return tuple(sorted(_REGISTRY))


@dataclass(frozen=True)
class LossTerm:
    """One term of a training loss: a registered loss, its weight and its parameters.

    Every check of a loss's configuration happens here, once: the name, the parameter names (with
    a suggestion for a misspelt one), their values and the weight.

    Parameters
    ----------
    name : str
        A registered loss (see :func:`available_losses`).
    weight : float
        Its factor in the sum of terms; finite. Kept as given, as the cache key records it.
    params : dict or sequence of (name, value) pairs
        The loss's keyword arguments; stored as sorted pairs (immutable), read with :attr:`kwargs`.

    Examples
    --------
    >>> LossTerm("ot", 0.5, {"lam": 0.3, "level": "token"})
    LossTerm('ot', weight=0.5, params={'lam': 0.3, 'level': 'token'})
    """

    name: str
    weight: float = 1.0
    params: tuple[tuple[str, Any], ...] = ()

    def __post_init__(self):
        if self.name not in _REGISTRY:
            raise ValueError(f"unknown loss {self.name!r}; choose one of {', '.join(available_losses())}")
        try:
            params = dict(self.params)
        except (TypeError, ValueError):
            raise ValueError(f"the parameters of {self.name!r} must be a dict of keyword arguments; got {self.params!r}") from None
        allowed = _REGISTRY[self.name].params
        unknown = sorted(map(str, set(params) - set(allowed)))
        if unknown:
            import difflib

            hints = [m for u in unknown for m in difflib.get_close_matches(u, allowed, n=1)]
            raise ValueError(
                f"loss {self.name!r} takes no parameter {', '.join(map(repr, unknown))}"
                + (f" (did you mean {', '.join(map(repr, hints))}?)" if hints else "")
                + f"; its parameters are {', '.join(allowed) or 'none'}"
            )
        for key, value in params.items():
            if key in _PARAM_CHECKS:
                _PARAM_CHECKS[key](value)
        options = {k: params[k] for k in _SOLVER_OPTIONS if k in params}
        if options:
            defaults = inspect.signature(partial_plan).parameters
            _check_solver_options(**{**{k: defaults[k].default for k in _SOLVER_OPTIONS}, **options})
        if not math.isfinite(_check_number(f"the weight of {self.name!r}", self.weight)):
            raise ValueError(f"the weight of {self.name!r} must be finite; got {self.weight}")
        object.__setattr__(self, "params", tuple(sorted(params.items())))
        _ = self.couples_samples  # a declaration that fails should fail here, not in a training step

    @property
    def kwargs(self) -> dict[str, Any]:
        """The parameters as keyword arguments of the loss."""
        return dict(self.params)

    @property
    def couples_samples(self) -> bool:
        """Whether the loss couples the samples of a batch, as its registration declares."""
        entry = _REGISTRY[self.name]
        declared = entry.couples_samples
        if callable(declared):
            declared = declared({**entry.defaults, **self.kwargs})
        if not isinstance(declared, (bool, np.bool_)):
            raise TypeError(f"the couples_samples declaration of loss {self.name!r} returned {declared!r}, not True or False")
        return bool(declared)

    def __repr__(self) -> str:
        weight = f", weight={self.weight!r}" if self.weight != 1 else ""
        params = f", params={self.kwargs!r}" if self.params else ""
        return f"LossTerm({self.name!r}{weight}{params})"


def loss_terms(spec) -> tuple[LossTerm, ...]:
    """The terms of a loss, however it is written.

    Parameters
    ----------
    spec : str, LossTerm, dict or list
        A name (``"mse"``), a :class:`LossTerm`, a dict ``{name: {"weight": w, **params}}``
        (weight 1 when absent), or a list or tuple of these. Each loss may appear once.

    Returns
    -------
    tuple of LossTerm, in the order given (the order in which the terms are summed)

    Examples
    --------
    >>> loss_terms({"mse": {}, "ot": {"weight": 0.5, "lam": 0.3}})
    (LossTerm('mse'), LossTerm('ot', weight=0.5, params={'lam': 0.3}))
    """
    if isinstance(spec, LossTerm):
        terms = (spec,)
    elif isinstance(spec, str):
        terms = (LossTerm(spec),)
    elif isinstance(spec, Mapping):
        terms = tuple(_dict_term(name, params) for name, params in spec.items())
    elif isinstance(spec, (list, tuple)):
        terms = tuple(t for part in spec for t in loss_terms(part))
    else:
        raise ValueError(f"a loss is a name, a LossTerm, a dict {{name: params}} or a list of them; got {spec!r}")
    if not terms:
        raise ValueError("a loss needs at least one term")
    names = [t.name for t in terms]
    twice = sorted({n for n in names if names.count(n) > 1})
    if twice:
        raise ValueError(f"loss {twice[0]!r} appears more than once; give each loss once (its weight scales it)")
    return terms


def _dict_term(name: str, params) -> LossTerm:
    if not isinstance(params, Mapping):
        raise ValueError(f"the parameters of {name!r} must be a dict, e.g. {{{name!r}: {{'weight': 1.0}}}}; got {params!r}")
    params = dict(params)
    return LossTerm(name, params.pop("weight", 1.0), params)


def loss_dict(spec) -> dict[str, dict[str, Any]]:
    """The dict form of a loss, ``{name: {"weight": w, **params}}``, what :func:`loss_terms`
    reads back; the weight is written only when it is not 1."""
    return {t.name: {**({"weight": t.weight} if t.weight != 1 else {}), **t.kwargs} for t in loss_terms(spec)}


class Loss:
    """A registered loss with its parameters bound: ``Loss("ot", lam=0.5)(x, y)``.

    Built from a name and parameters (checked by :class:`LossTerm`), or from a checked
    :class:`LossTerm`, whose weight it leaves to :class:`WeightedLoss`.
    """

    def __init__(self, name: str | LossTerm, **params):
        if isinstance(name, LossTerm):
            if params:
                raise ValueError("give the parameters inside the LossTerm")
            term = name
        else:
            term = LossTerm(name, params=params)
        self.name = term.name
        self.params = term.kwargs
        self._fn = _REGISTRY[term.name].fn
        #: True when a sample's loss depends on the other samples of the batch, so a distributed
        #: step must see the whole batch (see :func:`register_loss`)
        self.couples_samples: bool = term.couples_samples

    def __call__(self, x: torch.Tensor, y: torch.Tensor) -> torch.Tensor:
        return self._fn(x, y, **self.params)

    def __repr__(self) -> str:
        args = ", ".join(f"{k}={v!r}" for k, v in sorted(self.params.items()))
        return f"Loss({self.name!r}{', ' if args else ''}{args})"


class WeightedLoss:
    """Weighted sum of registered losses: ``sum_k weight_k * loss_k(x, y)``."""

    def __init__(self, terms: list[tuple[float, Loss]]):
        if not terms:
            raise ValueError("a weighted loss needs at least one term")
        self.terms = terms
        self.couples_samples: bool = any(loss.couples_samples for _, loss in terms)

    def __call__(self, x: torch.Tensor, y: torch.Tensor) -> torch.Tensor:
        return sum(w * loss(x, y) for w, loss in self.terms)

    def __repr__(self) -> str:
        return " + ".join(f"{w:g} * {loss!r}" for w, loss in self.terms)


def get_loss(spec, **params):
    """The callable ``loss(pred, target) -> scalar`` of a loss: "mse", "ot" (partial OT),
    "infonce" or a registered one.

    A name with keyword parameters gives a :class:`Loss`; anything else that :func:`loss_terms`
    reads (a dict ``{name: {"weight": w, **params}}``, :class:`LossTerm` objects) gives the
    :class:`WeightedLoss` of its terms, already checked, so nothing is checked again here.

    >>> get_loss("ot", lam=0.5, level="token", cost="euclidean")
    Loss('ot', cost='euclidean', lam=0.5, level='token')
    >>> get_loss({"mse": {}, "ot": {"weight": 0.5, "lam": 0.3}})
    1 * Loss('mse') + 0.5 * Loss('ot', lam=0.3)
    """
    if isinstance(spec, str):
        return Loss(spec, **params)
    if params:
        raise ValueError("give the parameters of a weighted loss inside its terms")
    return WeightedLoss([(float(t.weight), Loss(t)) for t in loss_terms(spec)])
