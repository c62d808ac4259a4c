"""Region masking and the region-interaction score."""

import itertools

import numpy as np
import pytest

from otnsd.analysis import interaction_matrix, valid_voxels
from otnsd.data import REGIONS, SimulatedNSD
from otnsd.train import TrainConfig, fit, voxel_mask

TINY = dict(seed=1, n_train=80, n_test=16, voxel_scale=0.02, n_tokens=4, dim=8, subjects=(1, 2))


@pytest.fixture(scope="module")
def sim():
    return SimulatedNSD(**TINY)


def test_masking_keeps_exactly_the_chosen_regions(sim, tmp_path):
    d = sim.subject(1)
    regions = ("Place", "Face")
    mask = voxel_mask(sim, 1, regions)
    assert set(d.voxel_region[mask]) == set(regions)
    assert set(d.voxel_region[~mask]).isdisjoint(regions)
    kept, total = valid_voxels(sim, 1, regions)
    assert kept == mask.sum() == d.region_counts()["Place"] + d.region_counts()["Face"] and total == d.n_voxels
    cfg = TrainConfig(regions=("Face", "Place"), epochs=1, batch_size=16, val_images=16,
                      encoder={"width": 16, "n_voxel_tokens": 4, "depth": 1, "heads": 2, "dim_head": 8})
    assert cfg.regions == ("Face", "Place")  # canonical order: the same model whatever order is asked
    res = fit(cfg, sim, runs_dir=tmp_path, progress=False)
    assert res.model.cfg.n_voxels == {1: kept}  # voxels removed, not zeroed
    assert res.predict_test(sim, 1).shape == (16, 4, 8)
    assert TrainConfig(regions=("Place", "Face")).key(sim) == TrainConfig(regions=("Face", "Place")).key(sim)
    assert TrainConfig(regions=None).key(sim) != TrainConfig(regions=("Place",)).key(sim)
    with pytest.raises(ValueError, match="unknown region"):
        TrainConfig(regions=("V1",))


def _linear_r2(X, y):
    X = np.hstack([X, np.ones((len(X), 1))])
    coef, *_ = np.linalg.lstsq(X, y, rcond=None)
    return 1 - ((y - X @ coef) ** 2).sum() / ((y - y.mean(0)) ** 2).sum()


def test_interaction_finds_planted_synergy_and_redundancy():
    """Decode the simulator's planted factors from region codes: synergy high, redundancy near 0."""
    sim = SimulatedNSD(seed=0, n_train=1500, n_test=10, voxel_scale=0.02, subjects=(1,))
    ids = np.arange(sim.n_images)
    codes = sim.region_codes(ids)
    rng = np.random.default_rng(0)
    noisy = {r: c + 0.3 * rng.standard_normal(c.shape) for r, c in codes.items()}

    def perf_for(target):
        return {frozenset(s): _linear_r2(np.hstack([noisy[r] for r in s]), target)
                for k in (1, 2) for s in itertools.combinations(REGIONS, k)}

    action = sim._codes["action"][ids]
    presence = sim._codes["people"][ids][:, 1:2]
    I_action = interaction_matrix(perf_for(action), REGIONS)
    I_presence = interaction_matrix(perf_for(presence), REGIONS)
    b, v, f = REGIONS.index("Body"), REGIONS.index("Vision"), REGIONS.index("Face")
    assert I_action[b, v] > 0.3  # synergy: Body + Vision recover the action
    assert abs(I_presence[b, f]) < 0.05  # redundancy: Face adds nothing to Body on presence
    assert np.nanargmax(I_action) in (b * len(REGIONS) + v, v * len(REGIONS) + b)


def test_interaction_matrix_checks_its_input():
    perf = {frozenset(["A"]): 0.2, frozenset(["B"]): 0.3, frozenset(["A", "B"]): 0.9}
    I = interaction_matrix(perf, ["A", "B"])
    assert I[0, 1] == I[1, 0] == pytest.approx(0.6) and np.isnan(I[0, 0])
    with pytest.raises(ValueError, match="lacks"):
        interaction_matrix({frozenset(["A"]): 0.2}, ["A", "B"])


def test_true_pair_shares_reads_where_the_plan_sends_mislabelled_rows():
    """A predictor that knows each trial's true image gets its mislabelled rows transported to
    their true image (share 1); one that predicts the label keeps them on the label."""
    import torch

    from otnsd.analysis import true_pair_shares
    from otnsd.data import SimulatedNSD

    data = SimulatedNSD(seed=5, n_train=260, n_test=20, voxel_scale=0.01, code_noise=0.0, voxel_noise=0.0,
                        mislabel_rate=0.3)
    d = data.subject(1)
    key = lambda v: tuple(np.round(np.asarray(v[:6], dtype=np.float64), 3))  # noqa: E731
    holds = {key(d.train_voxels[i, r]): int(d.meta["true_image_ids"][i]) for i in range(len(d.train_voxels)) for r in range(d.n_repeats)}
    labelled = {key(d.train_voxels[i, r]): int(d.train_image_ids[i]) for i in range(len(d.train_voxels)) for r in range(d.n_repeats)}

    class Lookup(torch.nn.Module):
        def __init__(self, table):
            super().__init__()
            self.table = table

        def forward(self, v, subject):
            return torch.from_numpy(data.image_embeddings([self.table[key(row)] for row in v.numpy()]))

    oracle = true_pair_shares(Lookup(holds), data, 1, lam=1.0, batch_size=32)
    assert oracle["n_mislabelled"] >= 30
    assert oracle["true"] > 0.99 and oracle["label"] < 0.01 and oracle["clean"] > 0.99
    blind = true_pair_shares(Lookup(labelled), data, 1, lam=1.0, batch_size=32)
    assert blind["label"] > 0.99 and blind["true"] < 0.01 and blind["chance"] == 1 / 32


def test_match_spread_restores_each_coordinates_spread_and_keeps_the_ranking():
    from otnsd.analysis import match_spread

    rng = np.random.default_rng(0)
    truth = rng.normal(0, 2.0, (300, 4, 5))
    shrunk = 0.3 * truth + 0.1 + rng.normal(0, 0.05, truth.shape)  # regression to the mean
    out = match_spread(shrunk, truth[:200])
    np.testing.assert_allclose(out.std(0), truth[:200].std(0), rtol=1e-5)
    np.testing.assert_allclose(out.mean(0), shrunk.mean(0), rtol=1e-5, atol=1e-6)
    # an affine map per coordinate: the order of the samples along each coordinate is kept
    assert np.array_equal(np.argsort(out[:, 0, 0]), np.argsort(shrunk[:, 0, 0]))
    with pytest.raises(ValueError, match="trailing shape"):
        match_spread(shrunk, truth[:, :, :4])
