"""The run cache's keys are pinned: a change that moves them would orphan every trained run.

The values were computed before losses became LossTerms, with the fingerprint of the simulated NSD
(seed 0) that the runs/ folder was trained on; the first ones are the paper's models and the
analysis notebooks' models as ``paper_models()`` and ``analysis_config()`` build them.
"""

from types import SimpleNamespace

import pytest

from otnsd.ot import LossTerm
from otnsd.train import TrainConfig

DATA = SimpleNamespace(fingerprint="21421e86e4209478")  # SimulatedNSD(seed=0)
OT = {"lam": 0.5, "level": "sample", "cost": "sqeuclidean"}
CROSS = dict(subjects=(1, 2, 5, 7), epochs=5)

PINNED = [
    ("MSE-S1", dict(loss={"mse": {}}), "83e83707ff693574"),
    ("OT-S1", dict(loss={"ot": OT}), "a6cf49467b7aa274"),
    ("OT-S1 (released code)", dict(loss={"ot": {"lam": 0.5, "level": "token", "cost": "euclidean"}}), "babc5bf8f54f5b4f"),
    ("MSE+OT-S1", dict(loss={"mse": {}, "ot": OT}), "6c0276683a7f731b"),
    ("InfoNCE-S1", dict(loss={"infonce": {}}), "264568540809fa53"),
    ("MSE-cross", dict(loss={"mse": {}}, **CROSS), "5e6db439229dde42"),
    ("OT-cross", dict(loss={"ot": OT}, **CROSS), "d4844bffdeca5624"),
    ("analysis mse+ot", dict(loss={"mse": {}, "ot": OT}, epochs=10), "9d30aa73f207c141"),
    ("analysis mse+ot Vision", dict(loss={"mse": {}, "ot": OT}, epochs=10, regions=("Vision",)), "07761a79a6c3bf9e"),
    ("analysis ot", dict(loss={"ot": OT}, epochs=10), "a1fca23a2149a6b0"),
    ("analysis mse Vision", dict(loss={"mse": {}}, epochs=10, regions=("Vision",)), "2c564554461c7d4e"),
    ("weighted", dict(loss={"mse": {}, "ot": {"weight": 0.5, "lam": 0.5}}), "b9e65073154b099e"),
    ("integer weight", dict(loss={"mse": {"weight": 2}, "ot": {"lam": 0.5}}), "32a3889e0219301a"),
    ("solver options", dict(loss={"ot": {"lam": 0.5, "solver": "sinkhorn", "eps_rel": 0.05, "max_iter": 500}}),
     "eb1ca1013cd35866"),
    ("encoder overrides", dict(loss={"mse": {}, "ot": {"lam": 0.5}}, encoder={"width": 16, "depth": 1}), "ffbd498e51392273"),
]


@pytest.mark.parametrize("name,kwargs,key", PINNED, ids=[p[0] for p in PINNED])
def test_cache_keys_are_pinned(name, kwargs, key):
    assert TrainConfig(**kwargs).key(DATA) == key


@pytest.mark.parametrize("name,kwargs,key", PINNED, ids=[p[0] for p in PINNED])
def test_every_spelling_of_a_loss_has_the_same_key(name, kwargs, key):
    spec = kwargs["loss"]
    terms = [LossTerm(n, p.get("weight", 1.0), {k: v for k, v in p.items() if k != "weight"}) for n, p in spec.items()]
    for loss in (terms, tuple(reversed(terms)), dict(reversed(spec.items()))):  # the order of terms never mattered
        assert TrainConfig(**{**kwargs, "loss": loss}).key(DATA) == key
    if spec == {"mse": {}}:
        assert TrainConfig(**{**kwargs, "loss": "mse"}).key(DATA) == key


def test_a_weight_of_one_written_out_shares_the_key_of_the_omitted_one():
    # Before LossTerm the two spellings hashed apart (the explicit one to d47149fe8730ff18);
    # no stored run used the explicit one.
    assert TrainConfig(loss={"ot": {"weight": 1.0, "lam": 0.5}}).key(DATA) == TrainConfig(loss={"ot": {"lam": 0.5}}).key(DATA)
