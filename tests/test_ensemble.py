"""Ensemble training (otnsd.ensemble): a member trained in a batched ensemble is the model trained
alone, up to float rounding; the cache, checkpoints and resume work for its members."""

import os
import subprocess
import sys
import textwrap

import pytest
import torch

from otnsd.data import SimulatedNSD
from otnsd.ensemble import EnsembleEncoder, ensemble_key, fit_group, partition
from otnsd.model import BrainEncoder, EncoderConfig
from otnsd.train import TrainConfig, fit, fit_many, is_cached, run_dir_for

TINY = dict(seed=1, n_train=80, n_test=16, voxel_scale=0.01, n_tokens=4, dim=8, subjects=(1,))
NET = {"width": 16, "n_voxel_tokens": 4, "depth": 2, "heads": 2, "dim_head": 8}
# one member of each kind: per-sample loss, a plan across the batch, a plan inside each sample
LOSSES = {"mse": {"mse": {}}, "sample OT": {"ot": {"lam": 0.5}},
          "token OT": {"ot": {"lam": 0.5, "level": "token", "cost": "euclidean"}}}


@pytest.fixture(scope="module")
def sim():
    return SimulatedNSD(**TINY)


def _cfg(loss="mse", seed=0, **kw):
    return TrainConfig(loss=LOSSES[loss], seed=seed, **{**dict(epochs=3, batch_size=16, val_images=16, encoder=NET), **kw})


def _weights(result):
    return torch.cat([p.detach().flatten() for p in result.model.parameters()])


def test_forward_and_gradients_equal_each_member_alone():
    cfg = EncoderConfig.preset("tiny", {1: 30}, **NET, subject_tokens=True)
    members = []
    for seed in range(3):
        torch.manual_seed(seed)
        m = BrainEncoder(cfg)
        m.set_voxel_stats(1, torch.randn(30), torch.rand(30) + 0.5)
        members.append(m)
    ens = EnsembleEncoder(members)
    x, y = torch.randn(3, 5, 30), torch.randn(3, 5, cfg.n_tokens, cfg.dim)
    out = ens(x)
    ((out - y) ** 2).sum().backward()
    for i, m in enumerate(members):
        alone = m(x[i], 1)
        torch.testing.assert_close(out[i], alone, rtol=1e-6, atol=1e-6)
        ((alone - y[i]) ** 2).sum().backward()
        scale = max(float(p.grad.abs().max()) for p in m.parameters())  # sums that cancel: float32 rounding of their terms
        for p, stacked in zip(m.parameters(), ens.stacked):
            torch.testing.assert_close(stacked.grad[i], p.grad, rtol=1e-4, atol=1e-5 * scale)
        assert all(torch.equal(a, b) for a, b in zip(ens.member(i).state_dict().values(), m.state_dict().values()))


def test_per_member_gradient_clipping_equals_torch():
    cfg = EncoderConfig.preset("tiny", {1: 30}, **NET)
    members = [BrainEncoder(cfg) for _ in range(2)]
    ens = EnsembleEncoder(members)
    x = torch.randn(2, 4, 30)
    (ens(x) * torch.tensor([1.0, 1e-6]).view(2, 1, 1, 1)).sum().backward()  # member 1's gradient is small
    norms = ens.clip_grad_norm_(1.0)
    for i, m in enumerate(members):
        (m(x[i], 1) * [1.0, 1e-6][i]).sum().backward()
        torch.testing.assert_close(norms[i], torch.nn.utils.clip_grad_norm_(m.parameters(), 1.0), rtol=1e-5, atol=0)
        for p, stacked in zip(m.parameters(), ens.stacked):
            torch.testing.assert_close(stacked.grad[i], p.grad, rtol=1e-5, atol=1e-7)
    assert norms[0] > 1 > norms[1]  # clipped, and left alone


def test_members_trained_together_equal_the_models_trained_alone(sim, tmp_path):
    """MSE, sample-level and token-level OT at three seeds in one ensemble: the OT plans couple the
    samples of a member's batch, never two members'."""
    configs = {name: _cfg(name, seed) for seed, name in enumerate(LOSSES)}
    fit_group(list(configs.values()), sim, tmp_path / "ensemble")
    for name, cfg in configs.items():
        together = fit(cfg, sim, tmp_path / "ensemble", progress=False)  # loads the member's run
        alone = fit(cfg, sim, tmp_path / "alone", progress=False)  # the one-model loop
        torch.testing.assert_close(_weights(together), _weights(alone), rtol=1e-4, atol=1e-5, msg=name)
        for key in ("train_loss", "val_loss", "val_mse"):
            torch.testing.assert_close(torch.tensor(together.history[key]), torch.tensor(alone.history[key]), rtol=1e-4,
                                       atol=0, msg=f"{name} {key}")


def test_a_member_does_not_depend_on_its_companions(sim, tmp_path):
    """Bit for bit: so a model's weights do not depend on which notebook trained it beside which others."""
    cfg = _cfg("sample OT", 3)
    fit_group([cfg], sim, tmp_path / "one")
    fit_group([cfg, _cfg("mse", 4), _cfg("token OT", 5)], sim, tmp_path / "three")
    assert torch.equal(_weights(fit(cfg, sim, tmp_path / "one", progress=False)),
                       _weights(fit(cfg, sim, tmp_path / "three", progress=False)))


def test_fit_many_groups_members_and_trains_the_rest_alone(sim, tmp_path):
    cross = SimulatedNSD(**{**TINY, "subjects": (1, 2)})
    configs = [_cfg("mse", s) for s in range(4)] + [_cfg("mse", 0, epochs=2)]
    units = partition(configs, workers=2, max_members=3)
    assert sorted(map(len, units)) == [1, 2, 2]  # 4 of one key over 2 workers, and the other
    assert ensemble_key(TrainConfig(subjects=(1, 2))) is None
    assert ensemble_key(_cfg("mse", 0, encoder={**NET, "dropout": 0.1})) is None
    with pytest.raises(ValueError, match="differ only in seed, loss"):
        fit_group(configs, sim, tmp_path)
    out = fit_many({"cross": _cfg("mse", subjects=(1, 2), epochs=1), "a": configs[0], "b": configs[1]}, cross,
                   tmp_path, workers=2, progress=False)
    assert all(is_cached(c, cross, tmp_path) for c in (configs[0], configs[1]))
    assert out["cross"].model.cfg.subjects == (1, 2)


def test_warm_started_members_wait_for_their_start(sim, tmp_path):
    mse = _cfg("mse", 0, epochs=2)
    warm = _cfg("sample OT", 0, epochs=2, warm_start=mse)
    with pytest.raises(ValueError, match="warm start is another member"):
        fit_group([mse, warm], sim, tmp_path)
    out = fit_many({"mse": mse, "warm": warm, "other": _cfg("token OT", 1, epochs=2)}, sim, tmp_path, workers=2,
                   progress=False)
    alone = fit(warm, sim, tmp_path / "alone", progress=False)
    torch.testing.assert_close(_weights(out["warm"]), _weights(alone), rtol=1e-4, atol=1e-5)


def test_an_ensemble_killed_mid_run_resumes_from_its_members_checkpoints(sim, tmp_path):
    members = [("mse", 0), ("sample OT", 1)]
    configs = [_cfg(loss, seed, epochs=4) for loss, seed in members]
    script = textwrap.dedent(f"""
        import sys
        sys.path.insert(0, {os.path.dirname(__file__)!r})
        from test_ensemble import _cfg
        from otnsd.data import SimulatedNSD
        from otnsd.ensemble import fit_group
        fit_group([_cfg(loss, seed, epochs=4) for loss, seed in {members!r}], SimulatedNSD(**{TINY!r}), {str(tmp_path)!r})
    """)
    env = {**os.environ, "OTNSD_TEST_KILL_AT_EPOCH": "2"}
    done = subprocess.run([sys.executable, "-c", script], env=env, capture_output=True, text=True)
    assert done.returncode == -9, done.stderr
    for cfg in configs:
        run = run_dir_for(cfg, sim, tmp_path)
        assert (run / "checkpoint.pt").exists() and not (run / "DONE").exists()
        assert torch.load(run / "checkpoint.pt", weights_only=False)["epoch"] == 2
    fit(configs[0], sim, tmp_path, progress=False)  # one member resumed alone, the other in an ensemble of one
    fit_group(configs, sim, tmp_path)
    for cfg in configs:
        resumed = fit(cfg, sim, tmp_path, progress=False)
        uninterrupted = fit(cfg, sim, tmp_path / "whole", progress=False)
        assert resumed.history["epoch"] == [1, 2, 3, 4]
        torch.testing.assert_close(_weights(resumed), _weights(uninterrupted), rtol=1e-4, atol=1e-5)
