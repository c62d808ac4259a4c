"""Region importance, linear probes, projections and the parallel training of analysis models."""

import copy

import matplotlib

matplotlib.use("Agg")
import numpy as np  # noqa: E402
import pytest  # noqa: E402
import torch  # noqa: E402

from otnsd.analysis import (  # noqa: E402
    gradient_saliency,
    perturbation_importance,
    probe_r2,
    project_embeddings,
    rank_agreement,
    separation,
)
from otnsd.data import REGIONS, SimulatedNSD  # noqa: E402
from otnsd.ot import get_loss, loss_dict  # noqa: E402
from otnsd.experiments import analysis_config  # noqa: E402
from otnsd.train import TrainConfig, fit, fit_many, run_dir_for  # noqa: E402

T, D = 2, 3


class _Tokenizer(torch.nn.Module):
    def __init__(self, std):
        super().__init__()
        self.register_buffer("voxel_std", torch.as_tensor(std, dtype=torch.float32))


class LinearDecoder(torch.nn.Module):
    """The encoder interface gradient_saliency needs: model(x, subject) and per-subject voxel_std."""

    def __init__(self, W, std):
        super().__init__()
        self.W = torch.nn.Parameter(torch.as_tensor(W, dtype=torch.float32))
        self.tokenizers = torch.nn.ModuleDict({"1": _Tokenizer(std)})

    def forward(self, x, subject):
        z = x / self.tokenizers[str(subject)].voxel_std
        return (z @ self.W).reshape(len(x), T, D)


@pytest.fixture(scope="module")
def toy():
    """Three regions; only region A carries the target. A least-squares decoder on all voxels."""
    rng = np.random.default_rng(0)
    sizes = {"A": 6, "B": 10, "C": 4}
    V = sum(sizes.values())
    groups, start = {}, 0
    for name, k in sizes.items():
        m = np.zeros(V, dtype=bool)
        m[start : start + k] = True
        groups[name] = m
        start += k
    std = rng.uniform(0.5, 2.0, V)
    X = rng.standard_normal((400, V)) * std
    W_true = np.zeros((V, T * D))
    W_true[groups["A"]] = rng.standard_normal((sizes["A"], T * D))
    Y = (X / std) @ W_true + 0.05 * rng.standard_normal((400, T * D))
    W, *_ = np.linalg.lstsq(X / std, Y, rcond=None)
    return LinearDecoder(W, std), X.astype(np.float32), Y.reshape(-1, T, D).astype(np.float32), groups


def test_saliency_ranks_the_informative_region_first(toy):
    model, X, Y, groups = toy
    sal = gradient_saliency(model, X, Y, 1, get_loss("mse"), groups, batch_size=64)
    for kind in ("raw", "per_voxel"):
        assert max(sal[kind], key=sal[kind].get) == "A"
        assert sal[kind]["A"] > 20 * max(sal[kind]["B"], sal[kind]["C"])
    assert sal["raw"]["B"] == pytest.approx(sal["voxel"][groups["B"]].sum())
    assert sal["per_voxel"]["A"] == pytest.approx(sal["voxel"][groups["A"]].mean())


def test_saliency_matches_finite_differences(toy):
    """s_v = mean_i |dL_i/dz_iv|, checked by central differences of each sample's own loss."""
    model, X, Y, groups = toy
    m64 = copy.deepcopy(model).double()
    X, Y = X[:12].astype(np.float64), torch.tensor(Y[:12], dtype=torch.float64)
    loss = get_loss("mse")
    sal = gradient_saliency(m64, X, Y, 1, loss, groups, batch_size=5)
    std = m64.tokenizers["1"].voxel_std.numpy()
    h = 1e-4

    def L(i, v, delta):
        x = torch.tensor(X[i : i + 1])
        x[0, v] += delta
        with torch.no_grad():
            return float(loss(m64(x, 1), Y[i : i + 1]))

    for v in (0, 3, 7, 18):
        fd = np.mean([abs(L(i, v, h) - L(i, v, -h)) / (2 * h) * std[v] for i in range(len(X))])
        assert sal["voxel"][v] == pytest.approx(fd, rel=1e-4, abs=1e-9)


def test_perturbation_ranks_the_informative_region_first(toy):
    model, X, Y, groups = toy

    def score(voxels):
        with torch.no_grad():
            pred = model(torch.as_tensor(voxels), 1).numpy()
        return -float(((pred - Y) ** 2).mean())

    for mode in ("permute", "mean"):
        out = perturbation_importance(score, X, groups, mode=mode, n_repeats=2, seed=0)
        assert out["base"] == pytest.approx(score(X))
        assert max(out["drop"], key=out["drop"].get) == "A"
        assert out["drop"]["A"] > 0.5 and abs(out["drop"]["B"]) < 0.05 and abs(out["drop"]["C"]) < 0.05
    with pytest.raises(ValueError, match="mode"):
        perturbation_importance(score, X, groups, mode="zero")
    with pytest.raises(ValueError, match="non-empty boolean mask"):
        perturbation_importance(score, X, {"none": np.zeros(X.shape[1], dtype=bool)})


def test_rank_agreement_is_spearman():
    from scipy.stats import spearmanr

    truth = {"a": 0.1, "b": 0.5, "c": 0.3, "d": 0.2}
    measured = {"a": 1.0, "b": 3.0, "c": 4.0, "d": 0.5, "extra": 9.0}
    keys = list(truth)
    assert rank_agreement(measured, truth) == pytest.approx(spearmanr([measured[k] for k in keys], [truth[k] for k in keys]).statistic)
    assert rank_agreement(truth, truth) == pytest.approx(1.0)
    with pytest.raises(ValueError, match="at least 3"):
        rank_agreement({"a": 1, "b": 2}, {"a": 1, "b": 2})


def test_probe_r2_matches_sklearn_ridge():
    from sklearn.linear_model import Ridge
    from sklearn.pipeline import make_pipeline
    from sklearn.preprocessing import StandardScaler

    rng = np.random.default_rng(1)
    X = rng.standard_normal((120, 4, 5))
    Y = X.reshape(120, -1)[:, :3] @ rng.standard_normal((3, 2)) + 0.5 * rng.standard_normal((120, 2))
    folds, alpha = 4, 3.0
    order = np.random.default_rng(7).permutation(120)
    pred = np.empty_like(Y)
    for part in np.array_split(order, folds):
        train = np.setdiff1d(order, part)
        pred[part] = make_pipeline(StandardScaler(), Ridge(alpha=alpha)).fit(X[train].reshape(len(train), -1), Y[train]).predict(
            X[part].reshape(len(part), -1))
    expected = 1 - ((Y - pred) ** 2).sum() / ((Y - Y.mean(0)) ** 2).sum()
    assert probe_r2(X, Y, alpha=alpha, folds=folds, seed=7) == pytest.approx(expected, rel=1e-8)
    assert probe_r2(X, rng.standard_normal((120, 1)), alpha=alpha, folds=folds) < 0.05  # nothing to read
    with pytest.raises(ValueError, match="one target row"):
        probe_r2(X, Y[:5])


def test_pca_projection_and_separation():
    from sklearn.decomposition import PCA

    rng = np.random.default_rng(2)
    a = rng.standard_normal((50, 3, 4)) + 4.0
    b = rng.standard_normal((50, 3, 4)) - 4.0
    proj = project_embeddings({"a": a, "b": b}, "pca")
    assert proj["a"].shape == (50, 2) and proj["b"].shape == (50, 2)
    X = np.vstack([a.reshape(50, -1), b.reshape(50, -1)])
    ref = PCA(2).fit_transform((X - X.mean(0)) / X.std(0))
    got = np.vstack([proj["a"], proj["b"]])
    assert np.allclose(np.abs(got), np.abs(ref), atol=1e-8)  # equal up to the sign of each axis
    labels = np.repeat(["a", "b"], 50)
    assert separation(got, labels) > 0.8
    mixed = rng.standard_normal((100, 2))
    assert abs(separation(mixed, labels)) < 0.1
    with pytest.raises(ValueError, match="pca"):
        project_embeddings({"a": a}, "tsne")


TINY = dict(seed=1, n_train=80, n_test=16, voxel_scale=0.02, n_tokens=4, dim=8, subjects=(1,))
SMALL_NET = {"width": 16, "n_voxel_tokens": 4, "depth": 1, "heads": 2, "dim_head": 8}


def test_analysis_config_shares_keys():
    sim = SimulatedNSD(**TINY)
    assert analysis_config(REGIONS).key(sim) == analysis_config(None).key(sim)  # every region = all voxels
    assert analysis_config(("Face", "Place")).regions == ("Face", "Place")
    assert loss_dict(analysis_config(None, loss="ot", lam=0.3).loss) == {"ot": {"lam": 0.3, "level": "sample", "cost": "sqeuclidean"}}
    assert {term.name for term in analysis_config(None).loss} == {"mse", "ot"}
    with pytest.raises(ValueError, match="unknown analysis loss"):
        analysis_config(None, loss="infonce")


@pytest.mark.parametrize("workers", [1, 2])
def test_fit_many_trains_each_run_once_and_matches_fit(tmp_path, workers):
    sim = SimulatedNSD(**TINY)
    common = dict(epochs=1, batch_size=16, val_images=16, encoder=SMALL_NET)
    configs = {"face": TrainConfig(regions=("Face",), **common), "all": TrainConfig(**common),
               "again": TrainConfig(regions=("Face",), **common)}
    out = fit_many(configs, sim, runs_dir=tmp_path, workers=workers, progress=False)
    assert list(out) == ["face", "all", "again"]
    assert len([p for p in (tmp_path / "train").iterdir() if p.is_dir()]) == 2
    assert out["face"].run_dir == out["again"].run_dir == run_dir_for(configs["face"], sim, tmp_path)
    again = fit(configs["all"], sim, runs_dir=tmp_path, progress=False)  # from the cache
    for a, b in zip(out["all"].model.state_dict().values(), again.model.state_dict().values()):
        assert torch.equal(a, b)
    assert out["face"].predict_test(sim, 1).shape == (16, 4, 8)
