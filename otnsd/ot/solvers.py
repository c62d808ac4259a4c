"""Partial-OT plans (eq. 12-13): POT's exact network simplex and a batched entropic solver in
torch, and the rule that picks one."""

from __future__ import annotations

import math
import os
import warnings
from concurrent.futures import ThreadPoolExecutor

import numpy as np
import torch

from ._checks import SOLVERS, _check_choice, _check_finite, _check_lam, _check_solver_options

# From this size on, the entropic solver beats POT's dummy-point network simplex for partial
# problems on a CPU (benchmarks/bench_ot.py; the README has the table).
_AUTO_MIN_N_CPU = 512
# eps-scaling: each stage divides eps by this factor, from std(C) down to the target
_EPS_STEP = 4.0
# absorb the scalings into the potentials once one of them leaves [e^-30, e^30]
_ABSORB_LOG = 30.0



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


