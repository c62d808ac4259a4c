"""Brain encoder and the training loop: shapes, learning, cache, lock, resume, safe loading."""

import json
import os
import subprocess
import sys
import textwrap

import numpy as np
import pytest
import torch

from otnsd.data import SimulatedNSD
from otnsd.model import BrainEncoder, EncoderConfig, load_encoder, save_encoder
from otnsd.train import TrainConfig, fit, is_cached, predict, run_dir_for

TINY = dict(seed=1, n_train=80, n_test=16, voxel_scale=0.01, n_tokens=4, dim=8)


@pytest.fixture(scope="module")
def sim():
    return SimulatedNSD(**TINY)


def _cfg(**kw):
    base = dict(epochs=3, batch_size=16, val_images=16, encoder={"width": 16, "n_voxel_tokens": 4, "depth": 1, "heads": 2, "dim_head": 8})
    base.update(kw)
    return TrainConfig(**base)


@pytest.mark.parametrize("preset", ["small", "paper"])
def test_encoder_shapes_per_preset(preset):
    n_vox = {1: 50, 2: 40} if preset == "small" else {1: 30}
    overrides = {} if preset == "small" else {"depth": 1}  # the paper's depth is slow on a CPU
    model = BrainEncoder(EncoderConfig.preset(preset, n_vox, **overrides))
    T, D = model.cfg.n_tokens, model.cfg.dim
    assert (T, D) == ((16, 64) if preset == "small" else (256, 1024))
    for s, v in n_vox.items():
        assert model(torch.randn(2, v), subject=s).shape == (2, T, D)


def test_encoder_rejects_wrong_subject_and_width():
    model = BrainEncoder(EncoderConfig.preset("small", {1: 10}))
    with pytest.raises(ValueError, match="subject 2"):
        model(torch.randn(2, 10), subject=2)
    with pytest.raises(ValueError, match=r"\(batch, 10\)"):
        model(torch.randn(2, 11), subject=1)
    with pytest.raises(ValueError, match="unknown preset"):
        EncoderConfig.preset("huge", {1: 10})


def test_subject_tokens_are_per_subject():
    model = BrainEncoder(EncoderConfig.preset("small", {1: 10, 2: 10}, subject_tokens=True))
    x = torch.randn(3, 10)
    with torch.no_grad():
        model.tokenizers["2"].load_state_dict(model.tokenizers["1"].state_dict())
        assert not torch.allclose(model(x, 1), model(x, 2))  # only the subject token differs


def test_tokenizer_equals_umbrae_two_linears():
    """token_k = w_k * (W x) + c_k is UMBRAE's Linear(1, K) per voxel then Linear(V, width)."""
    from otnsd.model import VoxelTokenizer

    tok = VoxelTokenizer(n_voxels=7, n_tokens=3, width=5)
    x = torch.randn(4, 7)
    w1, b1 = tok.token_scale, torch.zeros(3)  # Linear(1, 3) without bias; the bias is token_shift
    per_voxel = x[:, :, None] * w1[None, None, :] + b1  # (B, V, K)
    umbrae = tok.project(per_voxel.transpose(1, 2))  # (B, K, width)
    ours = tok(x) - tok.token_shift
    torch.testing.assert_close(ours, umbrae - tok.project.bias * (1 - w1)[None, :, None], atol=1e-6, rtol=1e-5)


def test_tiny_fit_lowers_the_loss(sim, tmp_path):
    res = fit(_cfg(epochs=15), sim, runs_dir=tmp_path, progress=False)
    h = res.history
    assert h["train_loss"][-1] < 0.7 * h["train_loss"][0]
    assert h["val_mse"][-1] < h["val_mse"][0]
    pred = predict(res.model, sim.subject(1).test_voxels, 1)
    assert pred.shape == (16, 4, 8) and np.isfinite(pred).all()


def test_cross_subject_fit(sim, tmp_path):
    res = fit(_cfg(subjects=(1, 2, 5, 7), epochs=2, loss={"mse": {}, "ot": {"weight": 0.5, "lam": 0.5}}), sim, runs_dir=tmp_path, progress=False)
    assert res.model.cfg.subjects == (1, 2, 5, 7)
    for s in (1, 2, 5, 7):
        assert predict(res.model, sim.subject(s).test_voxels[:3], s).shape == (3, 4, 8)


def test_cache_hit_trains_once(sim, tmp_path):
    cfg = _cfg(loss={"ot": {"lam": 0.5}})
    assert not is_cached(cfg, sim, tmp_path)
    first = fit(cfg, sim, runs_dir=tmp_path, progress=False)
    assert is_cached(cfg, sim, tmp_path)
    stamp = (first.run_dir / "encoder.pt").stat().st_mtime_ns
    second = fit(cfg, sim, runs_dir=tmp_path, progress=False)
    assert (second.run_dir / "encoder.pt").stat().st_mtime_ns == stamp
    for a, b in zip(first.model.parameters(), second.model.parameters()):
        assert torch.equal(a, b)
    other = _cfg(loss={"ot": {"lam": 0.3}})
    assert run_dir_for(other, sim, tmp_path) != first.run_dir
    recorded = json.loads((first.run_dir / "config.json").read_text())["config"]
    assert recorded["loss"] == {"ot": {"lam": 0.5}}  # readable: the dict form


def test_train_config_keeps_the_loss_as_checked_terms():
    import pickle

    from otnsd.ot import LossTerm

    cfg = TrainConfig(loss={"mse": {}, "ot": {"weight": 0.5, "lam": 0.3}})
    assert cfg.loss == (LossTerm("mse"), LossTerm("ot", 0.5, {"lam": 0.3}))
    assert TrainConfig(loss=list(cfg.loss)).loss == cfg.loss
    assert TrainConfig(loss="mse").loss == TrainConfig().loss == (LossTerm("mse"),)
    assert pickle.loads(pickle.dumps(cfg)) == cfg  # fit_many hands configurations to its workers
    assert cfg.record()["loss"] == {"mse": {}, "ot": {"weight": 0.5, "lam": 0.3}}
    with pytest.raises(ValueError, match="'ot' appears more than once"):
        TrainConfig(loss=[LossTerm("ot", params={"lam": 0.3}), {"ot": {"lam": 0.5}}])


def test_half_written_run_is_not_taken_as_finished(sim, tmp_path):
    cfg = _cfg()
    run = run_dir_for(cfg, sim, tmp_path)
    run.mkdir(parents=True)
    (run / "encoder.pt").write_bytes(b"partial")  # no DONE marker
    res = fit(cfg, sim, runs_dir=tmp_path, progress=False)
    assert (run / "DONE").exists() and res.model is not None


_SCRIPT = textwrap.dedent(
    """
    import sys, torch
    torch.set_num_threads(1)
    from otnsd.data import SimulatedNSD
    from otnsd.train import TrainConfig, fit
    sim = SimulatedNSD(**{tiny})
    cfg = TrainConfig(**{cfg})
    fit(cfg, sim, runs_dir=sys.argv[1], progress=False)
    """
)


def _run_script(tmp_path, runs, cfg_kwargs, env_extra=None):
    script = tmp_path / "train_script.py"
    script.write_text(_SCRIPT.format(tiny=repr(TINY), cfg=repr(cfg_kwargs)))
    env = {**os.environ, "OMP_NUM_THREADS": "1", **(env_extra or {})}
    return subprocess.Popen([sys.executable, str(script), str(runs)], env=env)


def _cfg_kwargs(**kw):
    return dict(epochs=4, batch_size=16, val_images=16, loss={"mse": {}, "ot": {"lam": 0.5}},
                encoder={"width": 16, "n_voxel_tokens": 4, "depth": 1, "heads": 2, "dim_head": 8}, **kw)


def test_resume_after_kill_matches_uninterrupted_run(sim, tmp_path):
    kw = _cfg_kwargs()
    killed = _run_script(tmp_path, tmp_path / "a", kw, {"OTNSD_TEST_KILL_AT_EPOCH": "2"})
    assert killed.wait(timeout=300) == -9  # died by SIGKILL after epoch 2's checkpoint
    run_a = run_dir_for(TrainConfig(**kw), sim, tmp_path / "a")
    assert (run_a / "checkpoint.pt").exists() and not (run_a / "DONE").exists()
    resumed = _run_script(tmp_path, tmp_path / "a", kw)
    assert resumed.wait(timeout=300) == 0
    straight = _run_script(tmp_path, tmp_path / "b", kw)
    assert straight.wait(timeout=300) == 0
    a = torch.load(run_a / "encoder.pt", weights_only=False)["state_dict"]
    b = torch.load(run_dir_for(TrainConfig(**kw), sim, tmp_path / "b") / "encoder.pt", weights_only=False)["state_dict"]
    assert a.keys() == b.keys()
    for k in a:
        assert torch.equal(a[k], b[k]), k
    ha = json.loads((run_a / "history.json").read_text())
    assert ha["epoch"] == [1, 2, 3, 4]


def test_two_processes_same_config_train_once(sim, tmp_path):
    kw = _cfg_kwargs(seed=5)
    procs = [_run_script(tmp_path, tmp_path / "shared", kw) for _ in range(2)]
    assert [p.wait(timeout=300) for p in procs] == [0, 0]
    run = run_dir_for(TrainConfig(**kw), sim, tmp_path / "shared")
    assert (run / "DONE").exists()
    assert load_encoder(run / "encoder.pt") is not None
    assert not list(run.glob("*.tmp*"))


def test_loading_another_architecture_is_an_error(tmp_path):
    small = BrainEncoder(EncoderConfig.preset("small", {1: 10}))
    save_encoder(small, tmp_path / "enc.pt")
    with pytest.raises(ValueError, match="another architecture or subject set"):
        load_encoder(tmp_path / "enc.pt", expected=EncoderConfig.preset("small", {1: 10, 2: 10}))
    with pytest.raises(ValueError, match="another architecture"):
        load_encoder(tmp_path / "enc.pt", expected=EncoderConfig.preset("small", {1: 10}, depth=3))
    # weights that do not fit the recorded architecture
    blob = torch.load(tmp_path / "enc.pt", weights_only=False)
    blob["state_dict"].pop("head.bias")
    torch.save(blob, tmp_path / "bad.pt")
    with pytest.raises(ValueError, match="does not match its architecture"):
        load_encoder(tmp_path / "bad.pt")
    torch.save({"weights": 1}, tmp_path / "foreign.pt")
    with pytest.raises(ValueError, match="not an otnsd encoder checkpoint"):
        load_encoder(tmp_path / "foreign.pt")


def test_bad_train_config():
    with pytest.raises(ValueError, match="unknown loss"):
        TrainConfig(loss={"l1": {}})
    with pytest.raises(ValueError, match="lam"):
        TrainConfig(loss={"ot": {"lam": 2}})
    with pytest.raises(ValueError, match="subjects_per_step"):
        TrainConfig(subjects=(1, 2), subjects_per_step=3)


def test_float16_voxels_train_like_float32():
    """Real NSD keeps its voxels in float16: batches and statistics still come out float32."""
    import numpy as np
    import torch

    from otnsd.batches import chunked_mean_std

    x = torch.from_numpy(np.random.default_rng(0).standard_normal((1000, 7)).astype(np.float16) * 3 + 1)
    mean, std = chunked_mean_std(x, rows=64)
    torch.testing.assert_close(mean, x.float().mean(0), rtol=1e-4, atol=1e-4)
    torch.testing.assert_close(std, x.float().std(0), rtol=1e-4, atol=1e-4)
    assert mean.dtype == std.dtype == torch.float32


# ------------------------------------------------------------------ validation and run files
def test_validation_uses_the_partial_batch(sim, tmp_path):
    """16 validation rows and a batch of 64: the loss must come from those rows, never read 0.0."""
    from otnsd.ot import get_loss
    from otnsd.batches import SubjectSplit
    from otnsd.train import _evaluate_loss

    res = fit(_cfg(epochs=1, batch_size=64), sim, runs_dir=tmp_path, progress=False)
    assert all(v > 0 for v in res.history["val_mse"] + res.history["val_loss"])
    split = SubjectSplit(sim, 1, 16)
    assert len(split.val_voxels) == 16
    with torch.no_grad():
        expected = float(get_loss("mse")(res.model(split.val_voxels, 1), split.val_targets))
    for batch_size in (64, 16, 5):  # one partial batch, one full batch, uneven batches (row-weighted)
        value = _evaluate_loss(res.model, [split], get_loss("mse"), batch_size, "cpu")
        assert value == pytest.approx(expected, rel=1e-5)


def test_train_config_refuses_no_validation_and_misspelled_losses():
    with pytest.raises(ValueError, match="val_images must be >= 1"):
        TrainConfig(val_images=0)
    with pytest.raises(ValueError, match="no parameter 'lamda'"):
        TrainConfig(loss={"ot": {"lamda": 0.5}})
    with pytest.raises(ValueError, match="lam must be a number"):
        TrainConfig(loss={"ot": {"lam": "0.5"}})


@pytest.mark.parametrize("name,content", [("encoder.pt", b"\x80\x02garbage"), ("encoder.pt", b""),
                                          ("history.json", b"{\"epoch\": [1"), ("history.json", b"[]")])
def test_damaged_run_file_is_named_discarded_and_retrained(sim, tmp_path, name, content):
    cfg = _cfg(epochs=1)
    first = fit(cfg, sim, runs_dir=tmp_path, progress=False)
    good = (first.run_dir / name).read_bytes()
    (first.run_dir / name).write_bytes(content)
    with pytest.warns(UserWarning, match=f"{name}.*damaged.*training it again"):
        again = fit(cfg, sim, runs_dir=tmp_path, progress=False)
    assert (again.run_dir / "DONE").exists()
    if name == "history.json":
        assert json.loads((again.run_dir / name).read_text()) == json.loads(good)
    for a, b in zip(first.model.parameters(), again.model.parameters()):  # retraining is deterministic
        torch.testing.assert_close(a, b)
    fit(cfg, sim, runs_dir=tmp_path, progress=False)  # and the repaired run loads without a warning


def test_damaged_checkpoint_restarts_training(sim, tmp_path):
    cfg = _cfg(epochs=2)
    run = run_dir_for(cfg, sim, tmp_path)
    run.mkdir(parents=True)
    (run / "checkpoint.pt").write_bytes(b"PK\x03\x04truncated")
    with pytest.warns(UserWarning, match="checkpoint.pt is damaged"):
        res = fit(cfg, sim, runs_dir=tmp_path, progress=False)
    assert res.history["epoch"] == [1, 2] and not (run / "checkpoint.pt").exists()


def test_warm_start_begins_from_the_other_runs_weights(tmp_path, sim):
    """MSE, then partial OT: the OT run starts from the MSE run's trained weights (trained first,
    in the same cache), and its key names that run; without warm_start keys are unchanged."""
    from otnsd.train import TrainConfig, fit, is_cached

    mse = TrainConfig(epochs=2, batch_size=16, val_images=10)
    # a vanishing learning rate: the warm-started weights barely move from the MSE run's
    ot = TrainConfig(loss={"ot": {"lam": 1.0}}, epochs=1, batch_size=16, val_images=10, lr=1e-12, warm_start=mse)
    run = fit(ot, sim, tmp_path, progress=False)
    warm = fit(mse, sim, tmp_path, progress=False)  # from the cache: trained by the call above
    assert is_cached(mse, sim, tmp_path)
    for name, p in run.model.state_dict().items():
        torch.testing.assert_close(p, warm.model.state_dict()[name], rtol=1e-4, atol=1e-6, msg=name)
    cold = TrainConfig(loss={"ot": {"lam": 1.0}}, epochs=1, batch_size=16, val_images=10, lr=1e-12)
    assert ot.key(sim) != cold.key(sim)
    assert TrainConfig(**{**cold.record(), "loss": {"ot": {"lam": 1.0}}, "warm_start": mse.record()}).key(sim) == ot.key(sim)
    with pytest.raises(ValueError, match="warm_start must train the same architecture"):
        TrainConfig(regions=("Face",), warm_start=mse)


def test_keep_true_pairs_puts_each_mislabelled_row_beside_its_true_image():
    """With keep_true_pairs every mislabelled training row shares its batch with the row labelled
    with the image whose responses it holds (a pair may straddle a batch boundary; rarely); the
    option leaves every other key unchanged and needs a dataset that knows the true images."""
    from otnsd.batches import SubjectSplit, epoch_batches

    data = SimulatedNSD(seed=2, n_train=300, n_test=20, voxel_scale=0.01, mislabel_rate=0.4)
    split = SubjectSplit(data, 1, val_images=20, keep_true_pairs=True)
    pairs = {(i, int(j)) for i, j in enumerate(split.partner) if j >= 0}
    assert len(pairs) >= 0.3 * len(split) and all((j, i) in pairs for i, j in pairs)  # mutual
    true_ids = data.subject(1).meta["true_image_ids"]
    assert all(true_ids[i] == data.subject(1).train_image_ids[j] for i, j in pairs)
    together, apart = 0, 0
    rng = np.random.default_rng(0)
    perm = rng.permutation(len(split))
    from otnsd.batches import paired_order

    order = paired_order(perm, split.partner)
    assert sorted(order) == list(range(len(split)))
    for b in range(len(order) // 16):
        batch = set(order[b * 16 : (b + 1) * 16].tolist())
        for i in batch:
            if split.partner[i] >= 0:
                together += split.partner[i] in batch
                apart += split.partner[i] not in batch
    assert together > 10 * apart
    # the training loop uses that order: every step holds both rows of most pairs
    steps = list(epoch_batches([split], 16, 1, np.random.default_rng(0)))
    assert len(steps) == len(split) // 16
    plain = SubjectSplit(data, 1, val_images=20)
    assert plain.partner is None
    assert TrainConfig(keep_true_pairs=False).key(data) == TrainConfig().key(data)
    assert TrainConfig(keep_true_pairs=True).key(data) != TrainConfig().key(data)
    with pytest.raises(ValueError, match="true image"):
        SubjectSplit(SimulatedNSD(seed=2, n_train=300, n_test=20, voxel_scale=0.01), 1, 20, keep_true_pairs=True)
    with pytest.raises(ValueError, match="single-subject"):
        TrainConfig(subjects=(1, 2), keep_true_pairs=True)
