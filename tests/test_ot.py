"""Partial OT: plans, losses and their checks against independent references."""

import numpy as np
import pytest
import torch
import torch.nn.functional as F
from scipy.optimize import linprog

from otnsd.ot import (
    LossTerm,
    available_losses,
    choose_solver,
    cost_matrix,
    get_loss,
    infonce_loss,
    loss_dict,
    loss_terms,
    mse_loss,
    partial_ot_loss,
    partial_plan,
    register_loss,
)


def _rand_cost(n, m, seed=0, batch=None, dtype=torch.float64):
    g = torch.Generator().manual_seed(seed)
    shape = (n, 6) if batch is None else (batch, n, 6)
    x = torch.randn(shape, generator=g, dtype=dtype)
    y = torch.randn(shape[:-2] + (m, 6), generator=g, dtype=dtype)
    return cost_matrix(x, y)


def _lp_value(C, lam):
    """Partial OT by scipy's LP solver: an implementation independent of POT and of ours."""
    n, m = C.shape
    a, b = np.full(n, 1 / n), np.full(m, 1 / m)
    rows = np.kron(np.eye(n), np.ones(m))  # sum_j gamma_ij
    cols = np.kron(np.ones(n), np.eye(m))  # sum_i gamma_ij
    res = linprog(
        C.ravel(),
        A_ub=np.vstack([rows, cols]),
        b_ub=np.concatenate([a, b]),
        A_eq=np.ones((1, n * m)),
        b_eq=[lam],
        bounds=(0, None),
        method="highs",
    )
    assert res.status == 0
    return res.fun


def _assert_feasible(P, lam, atol):
    n, m = P.shape[-2:]
    assert (P >= 0).all()
    assert (P.sum(-1) <= 1 / n + atol).all()
    assert (P.sum(-2) <= 1 / m + atol).all()
    torch.testing.assert_close(P.sum((-1, -2)), torch.full(P.shape[:-2], lam, dtype=P.dtype), atol=atol, rtol=0)


@pytest.mark.filterwarnings("ignore:entropic partial OT stopped")
# ---------------------------------------------------------------------------------------- plans
@pytest.mark.parametrize("solver", ["exact", "sinkhorn"])
@pytest.mark.parametrize("lam", [0.1, 0.5, 0.9, 1.0])
@pytest.mark.parametrize("shape", [(6, 6), (5, 9), (12, 4)])
def test_plan_satisfies_constraints(solver, lam, shape):
    C = _rand_cost(*shape, seed=1)
    P = partial_plan(C, lam, solver=solver, tol=1e-6)
    _assert_feasible(P, lam, atol=1e-9 if solver == "exact" else 1e-5)


@pytest.mark.parametrize("lam", [0.2, 0.5, 0.75, 1.0])
@pytest.mark.parametrize("shape", [(4, 4), (5, 7), (8, 3)])
def test_exact_matches_scipy_linprog(lam, shape):
    C = _rand_cost(*shape, seed=2)
    P = partial_plan(C, lam, solver="exact")
    assert float((P * C).sum()) == pytest.approx(_lp_value(C.numpy(), lam), rel=1e-9, abs=1e-12)


@pytest.mark.parametrize("lam", [0.1, 0.3, 0.7, 1.0])
@pytest.mark.parametrize("paired,rel", [(True, 1e-3), (False, 2e-2)])
def test_sinkhorn_close_to_exact(lam, paired, rel):
    """Default eps: within 0.1% for paired embeddings, a few % for unrelated low-dim clouds."""
    g = torch.Generator().manual_seed(3)
    if paired:
        y = torch.randn(128, 64, generator=g)
        x = y + torch.randn(128, 64, generator=g)
    else:
        x, y = torch.randn(64, 6, generator=g), torch.randn(64, 6, generator=g)
    C = cost_matrix(x, y)
    exact = float((partial_plan(C, lam, solver="exact") * C).sum())
    entropic = float((partial_plan(C, lam, solver="sinkhorn") * C).sum())
    assert entropic == pytest.approx(exact, rel=rel)


@pytest.mark.filterwarnings("ignore:entropic partial OT stopped")
def test_sinkhorn_converges_to_exact_as_eps_shrinks():
    C = _rand_cost(32, 32, seed=4)
    exact = float((partial_plan(C, 0.5, solver="exact") * C).sum())
    errors = [
        abs(float((partial_plan(C, 0.5, solver="sinkhorn", eps_rel=r, tol=1e-7, max_iter=20000) * C).sum()) - exact)
        for r in (0.5, 0.1, 0.02, 0.005)
    ]
    assert all(e2 < e1 for e1, e2 in zip(errors, errors[1:])), errors
    assert errors[-1] / exact < 1e-3


@pytest.mark.parametrize("solver", ["exact", "sinkhorn"])
def test_batched_equals_looped(solver):
    C = _rand_cost(10, 10, seed=5, batch=4)
    batched = partial_plan(C, 0.6, solver=solver)
    looped = torch.stack([partial_plan(c, 0.6, solver=solver) for c in C])
    torch.testing.assert_close(batched, looped, atol=1e-7, rtol=1e-5)


@pytest.mark.filterwarnings("ignore:entropic partial OT stopped")
@pytest.mark.parametrize("dtype", [torch.float32, torch.float64])
def test_tiny_eps_stays_finite(dtype):
    C = _rand_cost(40, 40, seed=6, dtype=dtype) * 100
    P = partial_plan(C, 0.5, solver="sinkhorn", eps_rel=1e-4, max_iter=300)
    assert P.dtype == dtype and torch.isfinite(P).all()
    _assert_feasible(P, 0.5, atol=1e-2)


@pytest.mark.parametrize("n", [3, 7, 11, 100])
def test_full_mass_is_feasible_in_float32(n):
    # 1/n in float32 sums to slightly less than 1 for these n; m = lam must still be feasible.
    C = _rand_cost(n, n, seed=7, dtype=torch.float32)
    for solver in ("exact", "sinkhorn"):
        P = partial_plan(C, 1.0, solver=solver)
        assert abs(float(P.sum()) - 1.0) < 1e-5


def test_plan_accepts_numpy_and_keeps_device_dtype():
    C = _rand_cost(5, 5).numpy()
    P = partial_plan(C, 0.5)
    assert isinstance(P, torch.Tensor) and P.dtype == torch.float64
    P32 = partial_plan(torch.from_numpy(C).float(), 0.5)
    assert P32.dtype == torch.float32


def test_auto_solver_choice():
    assert choose_solver(64, 64, 0.5) == "exact"
    assert choose_solver(1024, 1024, 0.5) == "sinkhorn"
    assert choose_solver(1024, 1024, 1.0) == "exact"
    assert choose_solver(64, 64, 0.5, device="cuda") == "sinkhorn"


# ---------------------------------------------------------------------------------------- losses
def _pair(shape, seed=0, dtype=torch.float64):
    g = torch.Generator().manual_seed(seed)
    y = torch.randn(shape, generator=g, dtype=dtype)
    x = y + 0.8 * torch.randn(shape, generator=g, dtype=dtype)
    return x, y


@pytest.mark.parametrize("level,shape", [("sample", (9, 5)), ("sample", (9, 3, 4)), ("token", (4, 6, 5))])
def test_identity_plan_gives_mse(level, shape):
    """Paper eq. 17-18: with gamma = I/N the OT loss is the MSE of eq. 2."""
    x, y = _pair(shape)
    if level == "sample":
        C = cost_matrix(x.reshape(len(x), -1), y.reshape(len(y), -1))
        ot_identity = (torch.eye(len(x), dtype=x.dtype) / len(x) * C).sum()
    else:
        C = cost_matrix(x, y)
        T = x.shape[1]
        ot_identity = (torch.eye(T, dtype=x.dtype) / T * C).sum((1, 2)).mean()
    torch.testing.assert_close(ot_identity, mse_loss(x, y, level=level))
    # and eq. 2 itself
    flat = (x - y).reshape(len(x), -1) if level == "sample" else (x - y).reshape(-1, x.shape[-1])
    torch.testing.assert_close(mse_loss(x, y, level=level), flat.pow(2).sum(1).mean())


@pytest.mark.parametrize("level,shape", [("sample", (16, 8)), ("token", (3, 10, 4))])
def test_exact_ot_never_above_mse(level, shape):
    for seed in range(5):
        x, y = _pair(shape, seed)
        assert partial_ot_loss(x, y, 1.0, level=level, solver="exact") <= mse_loss(x, y, level=level) + 1e-12


@pytest.mark.parametrize("level", ["sample", "token"])
@pytest.mark.parametrize("cost", ["sqeuclidean", "euclidean"])
def test_loss_non_decreasing_in_lam(level, cost):
    x, y = _pair((12, 5, 3))
    values = [float(partial_ot_loss(x, y, lam, level=level, cost=cost, solver="exact")) for lam in np.linspace(0.05, 1, 12)]
    assert all(v2 >= v1 - 1e-12 for v1, v2 in zip(values, values[1:])), values


@pytest.mark.parametrize("level,cost", [("sample", "sqeuclidean"), ("sample", "euclidean"), ("token", "euclidean")])
def test_envelope_gradient_matches_finite_differences(level, cost):
    """d/dx of min_gamma <gamma, C(x)> equals <gamma*, dC/dx>: no gradient through the solver."""
    x, y = _pair((5, 3, 2) if level == "token" else (6, 3), seed=11)
    x.requires_grad_(True)
    loss = partial_ot_loss(x, y, 0.6, level=level, cost=cost, solver="exact")
    (grad,) = torch.autograd.grad(loss, x)
    h = 1e-6
    fd = torch.zeros_like(x)
    with torch.no_grad():
        for idx in np.ndindex(*x.shape):
            xp, xm = x.detach().clone(), x.detach().clone()
            xp[idx] += h
            xm[idx] -= h
            fd[idx] = (
                partial_ot_loss(xp, y, 0.6, level=level, cost=cost, solver="exact")
                - partial_ot_loss(xm, y, 0.6, level=level, cost=cost, solver="exact")
            ) / (2 * h)
    torch.testing.assert_close(grad, fd, atol=1e-6, rtol=1e-5)


def test_plan_is_held_constant_in_backward():
    x, y = _pair((8, 4), dtype=torch.float32)
    x.requires_grad_(True)
    loss, gamma = partial_ot_loss(x, y, 0.5, solver="sinkhorn", return_plan=True)
    assert not gamma.requires_grad
    loss.backward()
    C = cost_matrix(x.detach(), y)
    x2 = x.detach().clone().requires_grad_(True)
    (gamma * cost_matrix(x2, y)).sum().backward()
    torch.testing.assert_close(x.grad, x2.grad)
    del C


def test_euclidean_cost_gradient_finite_at_coincident_points():
    y = torch.randn(6, 4)
    x = y.clone().requires_grad_(True)
    partial_ot_loss(x, y, 1.0, cost="euclidean").backward()
    assert torch.isfinite(x.grad).all()


def test_sqeuclidean_cost_clamped_at_zero():
    x = torch.full((3, 4), 1e4, dtype=torch.float32)
    assert (cost_matrix(x, x) >= 0).all()


def test_cost_matches_cdist():
    x, y = _pair((7, 5))
    torch.testing.assert_close(cost_matrix(x, y, "euclidean"), torch.cdist(x, y))
    torch.testing.assert_close(cost_matrix(x, y), torch.cdist(x, y) ** 2)


@pytest.mark.parametrize("dtype", [torch.float32, torch.float64])
@pytest.mark.parametrize("solver", ["exact", "sinkhorn", "auto"])
def test_loss_dtypes(dtype, solver):
    x, y = _pair((10, 2, 3), dtype=dtype)
    for level in ("sample", "token"):
        loss = partial_ot_loss(x, y, 0.5, level=level, solver=solver)
        assert loss.dtype == dtype and torch.isfinite(loss)


def test_infonce_prefers_matched_pairs():
    y = torch.randn(16, 8)
    matched = infonce_loss(y + 0.01 * torch.randn_like(y), y)
    shuffled = infonce_loss(y[torch.randperm(16)], y)
    assert matched < 0.1 < shuffled
    # symmetric in its arguments
    x = torch.randn(16, 8)
    torch.testing.assert_close(infonce_loss(x, y), infonce_loss(y, x))


def test_registry():
    assert set(available_losses()) >= {"mse", "ot", "infonce"}
    x, y = _pair((6, 3, 2))
    torch.testing.assert_close(get_loss("mse")(x, y), mse_loss(x, y))
    torch.testing.assert_close(
        get_loss("ot", lam=0.5, level="token")(x, y), partial_ot_loss(x, y, 0.5, level="token")
    )
    assert "lam=0.5" in repr(get_loss("ot", lam=0.5))



# ---------------------------------------------------------------------------------------- loss terms
@pytest.mark.parametrize(
    "spec,couples",
    [
        ("mse", False),
        ({"mse": {"level": "token"}}, False),
        ("infonce", True),
        ({"ot": {"lam": 0.5}}, True),  # one plan across the batch
        ({"ot": {"lam": 0.5, "level": "sample"}}, True),
        ({"ot": {"lam": 0.5, "level": "token"}}, False),  # one plan inside each sample
        ({"mse": {}, "ot": {"level": "token"}}, False),
        ({"mse": {}, "ot": {}}, True),
    ],
)
def test_losses_declare_whether_they_couple_samples(spec, couples):
    assert get_loss(spec).couples_samples is couples
    if isinstance(spec, str):
        assert get_loss(spec).couples_samples is LossTerm(spec).couples_samples


def test_registering_a_loss_needs_its_coupling_declared():
    with pytest.raises(TypeError, match="must declare couples_samples: True if a sample's loss depends"):
        register_loss("test_undeclared")
    with pytest.raises(TypeError, match="couples_samples must be True, False or a function"):
        register_loss("test_undeclared", couples_samples="no")
    assert "test_undeclared" not in available_losses()
    register_loss("test_bad_declaration", couples_samples=lambda p: "yes")(lambda x, y: (x - y).sum())
    with pytest.raises(TypeError, match="returned 'yes', not True or False"):
        LossTerm("test_bad_declaration")


def test_a_new_loss_is_one_decorated_function():
    @register_loss("test_huber", couples_samples=False)
    def huber(x, y, *, delta: float = 1.0):
        return F.huber_loss(x, y, delta=delta, reduction="none").flatten(1).sum(1).mean()

    x, y = _pair((6, 3, 2))
    loss = get_loss({"test_huber": {"weight": 0.5, "delta": 0.1}})
    torch.testing.assert_close(loss(x, y), 0.5 * huber(x, y, delta=0.1))
    assert loss.couples_samples is False
    with pytest.raises(ValueError, match="no parameter 'delt'.*did you mean 'delta'"):
        LossTerm("test_huber", params={"delt": 0.1})
    with pytest.raises(ValueError, match="already registered"):
        register_loss("test_huber", couples_samples=False)(huber)


def test_loss_terms_read_every_form_and_keep_the_order():
    ot = LossTerm("ot", 0.5, {"lam": 0.3})
    assert loss_terms({"mse": {}, "ot": {"weight": 0.5, "lam": 0.3}}) == (LossTerm("mse"), ot)
    assert loss_terms(["mse", ot]) == loss_terms((LossTerm("mse"), {"ot": {"lam": 0.3, "weight": 0.5}}))
    assert loss_terms("mse") == loss_terms(LossTerm("mse")) == (LossTerm("mse", 1.0, {}),)
    assert [t.name for t in loss_terms({"ot": {}, "mse": {}})] == ["ot", "mse"]  # the order they are summed in
    assert loss_dict(["mse", ot]) == {"mse": {}, "ot": {"weight": 0.5, "lam": 0.3}}
    assert loss_terms(loss_dict(["mse", ot])) == (LossTerm("mse"), ot)
    with pytest.raises(ValueError, match="'ot' appears more than once"):
        loss_terms([ot, {"ot": {"lam": 0.7}}])
    with pytest.raises(ValueError, match="at least one term"):
        loss_terms({})
    with pytest.raises(ValueError, match="a loss is a name, a LossTerm"):
        loss_terms(0.5)


def test_loss_term_is_immutable_and_checked_once():
    term = LossTerm("ot", params={"level": "token", "lam": 0.5})
    assert term.params == (("lam", 0.5), ("level", "token"))  # sorted pairs: hashable, order-free
    assert hash(term) == hash(LossTerm("ot", params=[("level", "token"), ("lam", 0.5)]))
    with pytest.raises(AttributeError):
        term.weight = 2.0
    term.kwargs["lam"] = 0.9  # a copy
    assert term.kwargs == {"lam": 0.5, "level": "token"}
    assert eval(repr(term)) == term
    for weight in (float("nan"), float("inf")):
        with pytest.raises(ValueError, match="weight of 'ot' must be finite"):
            LossTerm("ot", weight)
    with pytest.raises(ValueError, match="weight of 'ot' must be a number"):
        LossTerm("ot", "1")
    with pytest.raises(ValueError, match="must be a dict of keyword arguments"):
        LossTerm("ot", params=0.5)
    with pytest.raises(ValueError, match="unknown loss 'l1'"):
        LossTerm("l1")


def test_get_loss_does_not_check_terms_again(monkeypatch):
    import otnsd.ot as otmod

    terms = loss_terms({"mse": {}, "ot": {"weight": 0.5, "lam": 0.3}})
    checked = []
    monkeypatch.setattr(otmod.LossTerm, "__post_init__", lambda self: checked.append(self))
    loss = get_loss(terms)
    assert checked == [] and repr(loss) == "1 * Loss('mse') + 0.5 * Loss('ot', lam=0.3)"


# ---------------------------------------------------------------------------------------- errors
@pytest.mark.parametrize("lam", [0.0, -0.1, 1.5, float("nan")])
def test_bad_lam(lam):
    x, y = _pair((4, 3))
    with pytest.raises(ValueError, match="lam"):
        partial_ot_loss(x, y, lam)
    with pytest.raises(ValueError, match="lam"):
        partial_plan(cost_matrix(x, y), lam)
    with pytest.raises(ValueError, match="lam"):
        get_loss("ot", lam=lam)


def test_shape_mismatch():
    with pytest.raises(ValueError, match="same shape"):
        partial_ot_loss(torch.randn(4, 3), torch.randn(5, 3))
    with pytest.raises(ValueError, match="same shape"):
        mse_loss(torch.randn(4, 3), torch.randn(4, 2))


def test_token_level_needs_3d():
    with pytest.raises(ValueError, match="token"):
        partial_ot_loss(torch.randn(4, 3), torch.randn(4, 3), level="token")


@pytest.mark.parametrize("bad", [float("nan"), float("inf")])
def test_non_finite_inputs(bad):
    x, y = _pair((4, 3))
    x[1, 2] = bad
    with pytest.raises(ValueError, match="NaN or infinite"):
        partial_ot_loss(x, y)
    with pytest.raises(ValueError, match="NaN or infinite"):
        partial_ot_loss(y, x)
    with pytest.raises(ValueError, match="NaN or infinite"):
        mse_loss(x, y)


@pytest.mark.parametrize(
    "kwargs,match",
    [
        ({"solver": "simplex"}, "solver"),
        ({"cost": "cosine"}, "cost"),
        ({"level": "batch"}, "level"),
    ],
)
def test_unknown_names(kwargs, match):
    x, y = _pair((4, 3))
    with pytest.raises(ValueError, match=match):
        partial_ot_loss(x, y, **kwargs)
    with pytest.raises(ValueError, match=match):
        get_loss("ot", **kwargs)


def test_unknown_loss_and_bad_cost_shape():
    with pytest.raises(ValueError, match="unknown loss"):
        get_loss("wasserstein")
    with pytest.raises(ValueError, match="shape"):
        partial_plan(torch.randn(3), 0.5)


@pytest.mark.parametrize("step", [2.0, 4.0, 16.0])
def test_eps_scaling_keeps_mass_in_float32(monkeypatch, step):
    """Large float32 costs and big eps steps must not underflow the kernel into a zero plan."""
    import otnsd.ot.solvers as solvers

    monkeypatch.setattr(solvers, "_EPS_STEP", step)
    g = torch.Generator().manual_seed(8)
    y = torch.randn(300, 768, generator=g)
    C = cost_matrix(y + torch.randn(300, 768, generator=g), y)
    P = partial_plan(C, 0.5, solver="sinkhorn")
    _assert_feasible(P.double(), 0.5, atol=1e-3)
    exact = float((partial_plan(C.double(), 0.5, solver="exact") * C.double()).sum())
    assert float((P.double() * C.double()).sum()) == pytest.approx(exact, rel=1e-3)


@pytest.mark.cuda
@pytest.mark.skipif(not torch.cuda.is_available(), reason="needs a GPU")
def test_sinkhorn_on_gpu_matches_cpu():
    C = _rand_cost(64, 64, seed=9, batch=3, dtype=torch.float32)
    P_cpu = partial_plan(C, 0.5, solver="sinkhorn")
    P_gpu = partial_plan(C.cuda(), 0.5, solver="sinkhorn")
    assert P_gpu.device.type == "cuda"
    torch.testing.assert_close(P_gpu.cpu(), P_cpu, atol=1e-5, rtol=1e-3)


def test_warns_when_max_iter_stops_the_entropic_solver():
    C = _rand_cost(30, 30, seed=10)
    with pytest.warns(RuntimeWarning, match="max_iter"):
        partial_plan(C, 0.5, solver="sinkhorn", eps_rel=1e-3, tol=1e-9, max_iter=20)


# ------------------------------------------------------------------ numerically safe costs (float32)
@pytest.mark.parametrize("level", ["sample", "token"])
def test_ot_never_above_mse_for_large_norm_float32_embeddings(level):
    """Far from the origin the matmul form of ||x - y||² cancels catastrophically in float32
    (48.3 instead of 26.2 before the costs were centred and accumulated in float64)."""
    g = torch.Generator().manual_seed(0)
    y = torch.randn(16, 256, 1024, generator=g) + 20
    x = y + 0.01 * torch.randn(16, 256, 1024, generator=g)
    mse = float(mse_loss(x, y, level=level))
    ot = float(partial_ot_loss(x, y, 1.0, level=level))
    ot64 = float(partial_ot_loss(x.double(), y.double(), 1.0, level=level))
    assert ot <= mse * (1 + 1e-5)
    assert ot == pytest.approx(ot64, rel=1e-5)


def test_cost_matrix_float32_matches_float64_direct_differences():
    g = torch.Generator().manual_seed(1)
    x = torch.randn(8, 3000, generator=g) * 0.1 + 50
    y = torch.randn(6, 3000, generator=g) * 0.1 + 50
    direct = ((x.double()[:, None] - y.double()[None]) ** 2).sum(-1)
    C = cost_matrix(x, y)
    assert C.dtype == torch.float32
    torch.testing.assert_close(C.double(), direct, rtol=1e-6, atol=0)
    torch.testing.assert_close(cost_matrix(x, y, "euclidean").double(), direct.sqrt(), rtol=1e-6, atol=0)


def test_cost_gradient_unchanged_by_centring():
    g = torch.Generator().manual_seed(2)
    x = (torch.randn(5, 7, generator=g, dtype=torch.float64) + 3).requires_grad_()
    y = torch.randn(5, 7, generator=g, dtype=torch.float64)
    W = torch.rand(5, 5, generator=g, dtype=torch.float64)
    (W * cost_matrix(x, y)).sum().backward()
    expected = 2 * (W.sum(1, keepdim=True) * x.detach() - W @ y)  # d/dx_i sum_j W_ij ||x_i - y_j||²
    torch.testing.assert_close(x.grad, expected)


def test_finite_inputs_whose_costs_overflow_are_named_as_such():
    x, y = torch.full((4, 8), 1e20), torch.zeros(4, 8)
    with pytest.raises(ValueError, match="costs overflow.*rescale"):
        partial_ot_loss(x, y, 1.0)
    assert torch.isfinite(partial_ot_loss(x.double(), y.double(), 1.0))


# ------------------------------------------------------------------ errors at the door
@pytest.mark.parametrize(
    "params,match",
    [
        ({"lamda": 0.5}, "no parameter 'lamda'.*did you mean 'lam'"),
        ({"lam": "0.5"}, "lam must be a number"),
        ({"lam": True}, "lam must be a number"),
        ({"eps_rel": 0.0}, "eps_rel must be positive"),
        ({"eps_rel": -0.1}, "eps_rel must be positive"),
        ({"check_every": 0}, "check_every must be a positive integer"),
        ({"max_iter": 2.5}, "max_iter must be a positive integer"),
        ({"temperature": 0.1}, "no parameter 'temperature'"),
        ({"return_plan": True}, "no parameter 'return_plan'"),
    ],
)
def test_loss_parameters_are_checked_by_name_at_construction(params, match):
    with pytest.raises(ValueError, match=match):
        get_loss("ot", **params)
    with pytest.raises(ValueError, match=match):
        get_loss({"mse": {}, "ot": params})


def test_solver_options_are_checked_where_they_are_used():
    C = torch.rand(4, 4)
    with pytest.raises(ValueError, match="eps_rel must be positive"):
        partial_plan(C, 0.5, solver="sinkhorn", eps_rel=0)
    with pytest.raises(ValueError, match="check_every must be a positive integer"):
        partial_plan(C, 0.5, solver="sinkhorn", check_every=0)
    x, y = _pair((4, 3))
    with pytest.raises(ValueError, match="unknown solver option"):
        partial_ot_loss(x, y, 0.5, epsilon=0.1)
    with pytest.raises(ValueError, match="temperature must be a number"):
        get_loss("infonce", temperature="0.07")
    with pytest.raises(ValueError, match="weight .*must be a number"):
        get_loss({"ot": {"weight": "1"}})
    with pytest.raises(ValueError, match="must be a dict"):
        get_loss({"ot": 0.5})


def test_numpy_and_list_inputs_are_converted():
    rng = np.random.default_rng(0)
    x32, y32 = rng.standard_normal((6, 5)).astype(np.float32), rng.standard_normal((6, 5)).astype(np.float32)
    expected = partial_ot_loss(torch.from_numpy(x32), torch.from_numpy(y32), 0.5)
    torch.testing.assert_close(partial_ot_loss(x32, y32, 0.5), expected)
    torch.testing.assert_close(mse_loss(x32.tolist(), y32.tolist()), mse_loss(torch.from_numpy(x32), torch.from_numpy(y32)))
    assert infonce_loss(x32, y32).dtype == torch.float32
    with pytest.raises(ValueError, match="must be a torch tensor"):
        partial_ot_loss("x", "y")
    with pytest.raises(ValueError, match="floating-point"):
        mse_loss(torch.ones(3, 2, dtype=torch.long), torch.ones(3, 2, dtype=torch.long))


# ------------------------------------------------------------------------------ robust baselines
def _diagonal_lp(e, lam):
    """Partial OT on the diagonal by scipy's LP solver: min sum g_i e_i, 0 <= g_i <= 1/N, sum g = lam."""
    from scipy.optimize import linprog

    n = len(e)
    res = linprog(e, bounds=[(0, 1 / n)] * n, A_eq=np.ones((1, n)), b_eq=[lam], method="highs")
    return res.fun


@pytest.mark.parametrize("lam", [0.1, 0.37, 0.5, 0.9, 1.0])
def test_trimmed_mse_is_partial_ot_on_the_diagonal(lam):
    from otnsd.ot import trimmed_mse_loss

    g = torch.Generator().manual_seed(3)
    x, y = torch.randn(13, 4, 5, generator=g, dtype=torch.float64), torch.randn(13, 4, 5, generator=g, dtype=torch.float64)
    e = ((x - y) ** 2).sum((1, 2)).numpy()
    assert float(trimmed_mse_loss(x, y, lam)) == pytest.approx(_diagonal_lp(e, lam), rel=1e-9)
    # the diagonal is one feasible plan of partial OT: trimming never costs less
    assert float(trimmed_mse_loss(x, y, lam)) >= float(partial_ot_loss(x, y, lam, solver="exact")) - 1e-9
    # token level: one trimming per sample over its tokens, averaged
    per_sample = [_diagonal_lp(((x[i] - y[i]) ** 2).sum(-1).numpy(), lam) for i in range(13)]
    assert float(trimmed_mse_loss(x, y, lam, level="token")) == pytest.approx(np.mean(per_sample), rel=1e-9)


def test_trimmed_mse_at_full_mass_is_mse_and_ignores_the_worst_samples():
    from otnsd.ot import trimmed_mse_loss

    g = torch.Generator().manual_seed(4)
    x, y = torch.randn(10, 6, generator=g), torch.randn(10, 6, generator=g)
    assert float(trimmed_mse_loss(x, y, 1.0)) == pytest.approx(float(mse_loss(x, y)), rel=1e-6)
    x_far = x.detach().clone()
    x_far[0] += 100  # an outlier sample: trimmed at lam = 0.5, so it gets no gradient
    x_far.requires_grad_(True)
    trimmed_mse_loss(x_far, y, 0.5).backward()
    assert float(x_far.grad[0].abs().sum()) == 0.0 and float(x_far.grad.abs().sum()) > 0
    with pytest.raises(ValueError, match="lam"):
        trimmed_mse_loss(x, y, 1.5)
    assert get_loss("trimmed_mse", lam=0.5).couples_samples and not get_loss("trimmed_mse", lam=0.5, level="token").couples_samples


def test_huber_matches_torch_and_mse_for_small_residuals():
    from otnsd.ot import huber_loss

    g = torch.Generator().manual_seed(5)
    x, y = torch.randn(9, 3, 4, generator=g), torch.randn(9, 3, 4, generator=g)
    expected = 2 * torch.nn.functional.huber_loss(x, y, delta=0.7, reduction="sum") / 9
    assert float(huber_loss(x, y, delta=0.7)) == pytest.approx(float(expected), rel=1e-6)
    assert float(huber_loss(x, y, delta=1e3)) == pytest.approx(float(mse_loss(x, y)), rel=1e-6)
    assert float(huber_loss(x, y, delta=0.7, level="token")) == pytest.approx(float(expected) / 3, rel=1e-6)
    with pytest.raises(ValueError, match="delta"):
        huber_loss(x, y, delta=0)
    assert not get_loss("huber", delta=2.0).couples_samples
