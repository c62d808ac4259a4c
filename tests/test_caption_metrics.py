"""Captioners and metrics, checked against direct pycocoevalcap calls and hand-computed values."""

import warnings

import numpy as np
import pytest

from otnsd import metrics
from otnsd.caption import PrefixCaptioner, PrefixConfig, RetrievalCaptioner
from otnsd.metrics import bootstrap_ci, caption_scores, clip_scores, retrieval_scores
from otnsd.plots import write_table

PRED = ["a man riding a horse on a beach", "two dogs playing in the park", "a red bus on the street"]
REFS = [
    ["a man rides a horse along the beach", "a person on a horse at the shore"],
    ["two dogs play in a grassy park", "dogs running in the park"],
    ["a red bus drives down the street", "a bus on a city road", "a red double decker bus"],
]


def test_caption_scores_match_direct_pycocoevalcap():
    from pycocoevalcap.bleu.bleu import Bleu
    from pycocoevalcap.cider.cider import Cider
    from pycocoevalcap.meteor.meteor import Meteor
    from pycocoevalcap.rouge.rouge import Rouge
    from pycocoevalcap.tokenizer.ptbtokenizer import PTBTokenizer

    tok = PTBTokenizer()
    gts = tok.tokenize({i: [{"caption": r} for r in refs] for i, refs in enumerate(REFS)})
    res = tok.tokenize({i: [{"caption": p}] for i, p in enumerate(PRED)})
    bleu, _ = Bleu(4).compute_score(gts, res)
    meteor, _ = Meteor().compute_score(gts, res)
    rouge, _ = Rouge().compute_score(gts, res)
    cider, _ = Cider().compute_score(gts, res)
    ours = caption_scores(PRED, REFS, spice=False)["corpus"]
    for k in range(4):
        assert ours[f"BLEU{k + 1}"] == pytest.approx(100 * bleu[k])
    assert ours["METEOR"] == pytest.approx(100 * meteor)
    assert ours["ROUGE"] == pytest.approx(100 * rouge)
    assert ours["CIDEr"] == pytest.approx(100 * cider)
    assert ours["SPICE"] is None


def test_cider_per_image_scores_each_set_as_caption_scores_does():
    from otnsd.metrics import cider_per_image

    other = [PRED[-1]] + PRED[:-1]  # another captioning of the same images
    both = cider_per_image({"a": PRED, "b": other}, REFS)
    for name, preds in (("a", PRED), ("b", other)):
        np.testing.assert_allclose(both[name], caption_scores(preds, REFS, spice=False)["per_image"]["CIDEr"])
    assert not np.allclose(both["a"], both["b"])


def test_spice_missing_reads_na_with_one_warning(monkeypatch):
    monkeypatch.setattr(metrics, "spice_available", lambda: False)
    monkeypatch.setattr(metrics, "_SPICE_WARNED", False)
    with pytest.warns(UserWarning, match="stanford-corenlp-3.6.0.jar"):
        out = caption_scores(PRED, REFS)
    assert out["corpus"]["SPICE"] is None
    with pytest.raises(FileNotFoundError, match="SPICE"):
        caption_scores(PRED, REFS, spice=True)


class _FixedEncoder:
    """Image i -> images[i]; a text -> its row in a table (prefix included)."""

    def __init__(self, images, texts):
        self.images, self.texts = images, texts

    def encode_image(self, ids):
        return self.images[np.asarray(ids)]

    def encode_text(self, texts):
        return np.stack([self.texts[t] for t in texts])


def test_clip_scores_hand_computed():
    p = metrics.CLIP_PREFIX
    images = np.array([[1.0, 0.0], [0.0, 1.0]])
    texts = {
        f"{p} c0": np.array([1.0, 1.0]),  # cos 1/sqrt(2) with image 0
        f"{p} c1": np.array([1.0, 0.0]),  # cos 0 with image 1
        f"{p} r00": np.array([1.0, 1.0]),  # identical to c0
        f"{p} r01": np.array([0.0, 1.0]),
        f"{p} r10": np.array([-1.0, 0.0]),  # cos -1 with c1: clipped to 0
    }
    out = clip_scores(_FixedEncoder(images, texts), [0, 1], ["c0", "c1"], [["r00", "r01"], ["r10"]])
    c0 = 2.5 * (1 / np.sqrt(2))
    np.testing.assert_allclose(out["CLIP-S"], [100 * c0, 0.0])
    np.testing.assert_allclose(out["RefCLIP-S"], [100 * 2 * c0 * 1.0 / (c0 + 1.0), 0.0])


def test_retrieval_and_bootstrap():
    rng = np.random.default_rng(0)
    target = rng.normal(size=(50, 4, 3))
    perfect = retrieval_scores(target, target)
    assert perfect["top1_brain2image"].mean() == 100 and perfect["top1_image2brain"].mean() == 100
    assert perfect["cosine"].mean() == pytest.approx(100)
    shuffled = retrieval_scores(target[::-1], target)
    assert shuffled["top1_brain2image"].mean() < 20
    noisy = retrieval_scores(target + 0.5 * rng.normal(size=target.shape), target)
    assert 0 < noisy["top5_brain2image"].mean() <= 100
    assert noisy["top5_brain2image"].mean() >= noisy["top1_brain2image"].mean()
    lo, hi = bootstrap_ci(noisy["cosine"])
    assert lo <= noisy["cosine"].mean() <= hi
    with pytest.raises(ValueError, match="shapes differ"):
        retrieval_scores(target, target[:10])


def test_retrieval_captioner_returns_the_training_caption():
    rng = np.random.default_rng(1)
    emb = rng.normal(size=(10, 4, 3))
    caps = [[f"caption {i}", f"other {i}"] for i in range(10)]
    rc = RetrievalCaptioner(emb, caps)
    assert rc(emb) == [f"caption {i}" for i in range(10)]
    assert RetrievalCaptioner(emb, caps, pooled=True)(emb[3:4]) == ["caption 3"]


def test_prefix_captioner_learns_a_tiny_set(tmp_path):
    rng = np.random.default_rng(2)
    emb = rng.normal(size=(6, 2, 4)).astype(np.float32)
    words = ["dog", "cat", "bus", "car", "horse", "cake"]
    caps = [[f"a {w} in a park"] for w in words]
    cap = PrefixCaptioner.train(emb, caps, PrefixConfig(hidden=64, word_dim=16, epochs=150, batch_size=6, lr=1e-2),
                                progress=False)
    out = cap(emb)
    assert sum(o.lower().rstrip(".") == c[0] for o, c in zip(out, caps)) >= 5, out
    cap.save(tmp_path / "cap.pt")
    assert PrefixCaptioner.load(tmp_path / "cap.pt")(emb) == out
    with pytest.raises(ValueError, match="shape"):
        cap(np.zeros((1, 3, 4), dtype=np.float32))


def test_write_table(tmp_path):
    rows = [{"Method": "MSE", "CIDEr": 51.234, "SPICE": None}, {"Method": "OT_S1", "CIDEr": 71.5, "SPICE": 14.4}]
    paths = write_table(rows, ["Method", "CIDEr", "SPICE"], "t", tmp_path, caption="demo")
    csv, md, tex = (p.read_text() for p in paths)
    assert '"MSE",51.23,n/a' in csv
    assert "| OT_S1 | 71.50 | 14.40 |" in md
    assert r"OT\_S1 & 71.50 & 14.40 \\" in tex


def test_openclip_encoder_from_local_weights(tmp_path):
    """A tiny random open_clip model, saved and reloaded from a local file (nothing downloaded)."""
    import json

    import open_clip
    import torch

    from otnsd.metrics import OpenCLIPEncoder

    cfg = {"embed_dim": 16,
           "vision_cfg": {"image_size": 32, "layers": 1, "width": 32, "head_width": 16, "patch_size": 16},
           "text_cfg": {"context_length": 77, "vocab_size": 49408, "width": 32, "heads": 2, "layers": 1}}
    (tmp_path / "otnsd-tiny-clip.json").write_text(json.dumps(cfg))
    open_clip.add_model_config(tmp_path / "otnsd-tiny-clip.json")
    model = open_clip.create_model("otnsd-tiny-clip", pretrained=None)
    torch.save(model.state_dict(), tmp_path / "tiny.pt")
    pics = np.random.default_rng(0).integers(0, 255, size=(3, 40, 48, 3), dtype=np.uint8)
    enc = OpenCLIPEncoder.from_local("otnsd-tiny-clip", tmp_path / "tiny.pt", images=lambda ids: pics[np.asarray(ids)])
    assert enc.encode_image([0, 2]).shape == (2, 16)
    assert enc.encode_text(["a dog", "a cat"]).shape == (2, 16)
    out = clip_scores(enc, [0, 1], ["a dog", "a cat"], [["a dog in a park"], ["a cat"]])
    assert out["CLIP-S"].shape == (2,) and np.all(out["CLIP-S"] >= 0)
    with pytest.raises(FileNotFoundError, match="no CLIP weights"):
        OpenCLIPEncoder.from_local("otnsd-tiny-clip", tmp_path / "missing.pt", images=None)


def test_summarize_seeds():
    from otnsd.metrics import summarize_seeds

    runs = [{"CIDEr": (10.0, 9, 11), "SPICE": (None, None, None)}, {"CIDEr": (14.0, 13, 15), "SPICE": (None, None, None)}]
    s = summarize_seeds(runs)
    assert s["CIDEr"] == (12.0, pytest.approx(np.std([10, 14], ddof=1)), 2)
    assert s["SPICE"] == (None, None, 2)
    with pytest.raises(ValueError):
        summarize_seeds([])


def test_meteor_runs_once_per_process_and_bootstrap_can_be_skipped():
    from otnsd.metrics import _meteor, bootstrap_ci

    assert _meteor() is _meteor()
    assert all(np.isnan(v) for v in bootstrap_ci(np.arange(5.0), n_boot=0))


def test_evaluate_embeddings_scores_captions_and_alignment():
    from otnsd.data import SimulatedNSD
    from otnsd.metrics import evaluate_embeddings

    sim = SimulatedNSD(seed=3, n_train=40, n_test=12, voxel_scale=0.02, n_tokens=4, dim=8, subjects=(1,))
    ids = sim.test_image_ids
    refs = sim.captions(ids)
    emb = sim.image_embeddings(ids)
    with warnings.catch_warnings():
        warnings.filterwarnings("ignore", message="SPICE is reported")  # no CoreNLP jars here
        scores, caps = evaluate_embeddings(sim, ids, emb, lambda e: [r[0] for r in refs[: len(e)]], n_boot=50)
    assert caps == [r[0] for r in refs]
    assert scores["top1_brain2image"][0] == 100.0  # the true embeddings retrieve themselves
    assert scores["BLEU1"][0] > 90 and scores["CIDEr"][1] <= scores["CIDEr"][2]


def test_references_given_as_strings_are_refused():
    """One string per image would be scored character by character (BLEU1 10 instead of 100)."""
    with pytest.raises(ValueError, match=r"references\[0\] must be a non-empty list of str.*\[\[r\] for r in references\]"):
        caption_scores(["a dog on grass", "a red car"], ["a dog on grass", "a red car"])
    with pytest.raises(ValueError, match="references\\[1\\]"):
        caption_scores(["a", "b"], [["a"], []])
    with pytest.raises(ValueError, match="predictions must be a list of str"):
        caption_scores("a dog", [["a dog"]] * 5)


def test_missing_java_says_how_to_install_it(monkeypatch):
    import shutil

    monkeypatch.setattr(shutil, "which", lambda name, *a, **k: None)
    with pytest.raises(RuntimeError, match="need Java.*apt-get install default-jre-headless"):
        metrics.require_java()
    with pytest.raises(RuntimeError, match="need Java"):
        caption_scores(["a dog"], [["a dog"]])


def test_references_are_tokenized_once_and_each_caller_gets_its_own_copy():
    from otnsd.metrics import _tokenize_frozen, _tokenized_references

    refs = [["A dog runs.", "a dog, running"], ["Two cats!"]]
    first = _tokenized_references(refs)
    first[0].append("changed by a caller")
    hits = _tokenize_frozen.cache_info().hits
    assert _tokenized_references(refs) == {0: ["a dog runs", "a dog running"], 1: ["two cats"]}
    assert _tokenize_frozen.cache_info().hits == hits + 1
