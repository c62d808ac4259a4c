"""The dataset API and the simulated NSD."""

import time

import numpy as np
import pytest

from otnsd.data import AREA_REGION, REGIONS, SimulatedNSD, SubjectData
from otnsd.data.rois import SUBJECT1_REGION_COUNTS


@pytest.fixture(scope="module")
def small():
    return SimulatedNSD(seed=3, n_train=60, n_test=20, voxel_scale=0.05, n_tokens=4, dim=8)


def test_deterministic_from_seed(small):
    again = SimulatedNSD(seed=3, n_train=60, n_test=20, voxel_scale=0.05, n_tokens=4, dim=8)
    a, b = small.subject(2), again.subject(2)
    np.testing.assert_array_equal(a.train_voxels, b.train_voxels)
    np.testing.assert_array_equal(a.test_voxels, b.test_voxels)
    np.testing.assert_array_equal(a.voxel_area, b.voxel_area)
    np.testing.assert_array_equal(small.image_embeddings([0, 5]), again.image_embeddings([0, 5]))
    assert small.captions([7]) == again.captions([7])
    assert small.fingerprint == again.fingerprint


def test_subject_order_does_not_change_data(small):
    again = SimulatedNSD(seed=3, n_train=60, n_test=20, voxel_scale=0.05, n_tokens=4, dim=8)
    again.subject(7)  # load in another order
    np.testing.assert_array_equal(small.subject(1).train_voxels, again.subject(1).train_voxels)


def test_seed_changes_data(small):
    other = SimulatedNSD(seed=4, n_train=60, n_test=20, voxel_scale=0.05, n_tokens=4, dim=8)
    assert other.fingerprint != small.fingerprint
    assert not np.allclose(other.image_embeddings([0]), small.image_embeddings([0]))


def test_shapes(small):
    T, D = small.embedding_shape
    assert (T, D) == (4, 8)
    for s in small.subjects:
        d = small.subject(s)
        assert isinstance(d, SubjectData)
        assert d.train_voxels.shape == (60, 3, d.n_voxels)
        assert d.test_voxels.shape == (20, d.n_voxels)
        assert d.train_voxels.dtype == np.float32 and d.test_voxels.dtype == np.float32
        assert small.image_embeddings(d.train_image_ids).shape == (60, T, D)
        assert np.isfinite(d.train_voxels).all()
    caps = small.captions(small.test_image_ids)
    assert len(caps) == 20 and all(len(c) == 5 and len(set(c)) == 5 for c in caps)


def test_test_images_shared_train_images_disjoint(small):
    train_sets = [set(small.subject(s).train_image_ids) for s in small.subjects]
    for s in small.subjects:
        np.testing.assert_array_equal(small.subject(s).test_image_ids, small.test_image_ids)
        assert not set(small.test_image_ids) & train_sets[small.subjects.index(s)]
    for i in range(len(train_sets)):
        for j in range(i + 1, len(train_sets)):
            assert not train_sets[i] & train_sets[j]


def test_subjects_and_voxel_counts():
    sim = SimulatedNSD(seed=0, n_train=10, n_test=5, voxel_scale=0.1)
    assert sim.subjects == (1, 2, 5, 7)
    expected = {1: 15724, 2: 14278, 5: 13039, 7: 12682}
    for s, n in expected.items():
        assert abs(sim.subject(s).n_voxels - round(0.1 * n)) <= 1


def test_subject1_region_proportions_follow_table2():
    sim = SimulatedNSD(seed=0, n_train=10, n_test=5, voxel_scale=1.0, subjects=(1,))
    counts = sim.subject(1).region_counts()
    assert counts == SUBJECT1_REGION_COUNTS
    assert counts == {"Vision": 4657, "Body": 2934, "Face": 1042, "Place": 2252, "Word": 1736, "Other": 3103}
    assert sum(counts.values()) == 15724


def test_region_masks(small):
    d = small.subject(1)
    assert set(d.voxel_region) == set(REGIONS)
    masks = {r: d.region_mask(r) for r in REGIONS}
    assert sum(m.sum() for m in masks.values()) == d.n_voxels  # disjoint cover
    both = d.region_mask(["Place", "Face"])
    np.testing.assert_array_equal(both, masks["Place"] | masks["Face"])
    assert all(AREA_REGION[a] == r for a, r in zip(d.voxel_area, d.voxel_region))
    with pytest.raises(ValueError, match="unknown region"):
        d.region_mask("V1")


def test_voxel_mask_none_means_every_voxel(small):
    d = small.subject(1)
    assert d.voxel_mask().dtype == bool and d.voxel_mask().shape == (d.n_voxels,) and d.voxel_mask().all()
    assert d.voxel_mask(None).all()
    np.testing.assert_array_equal(d.voxel_mask("Face"), d.region_mask("Face"))
    np.testing.assert_array_equal(d.voxel_mask(["Place", "Word"]), d.region_mask(["Place", "Word"]))
    with pytest.raises(ValueError, match="unknown region"):
        d.voxel_mask(["V1"])


def test_optional_hooks_say_which_feature_needs_them(small):
    from otnsd.data import BrainImageDataset

    class Bare(BrainImageDataset):  # only the abstract hooks
        subjects, embedding_shape, test_image_ids = (1,), (4, 8), np.arange(2)

        def _load_subject(self, subject):
            return small.subject(1)

        def image_embeddings(self, image_ids):
            return small.image_embeddings(image_ids)

        def captions(self, image_ids):
            return small.captions(image_ids)

        def config(self):
            return {"kind": "Bare"}

    bare = Bare()
    with pytest.raises(NotImplementedError, match="CLIP-S"):
        bare.images([0])
    with pytest.raises(NotImplementedError, match="simulator"):
        bare.ground_truth  # noqa: B018
    with pytest.raises(NotImplementedError, match="simulator"):
        bare.scene(0)
    with pytest.raises(NotImplementedError, match="simulator"):
        bare.factor_codes([0], "place")
    # evaluate_embeddings uses the dataset as its CLIP-S encoder only when it has encode_image
    assert not hasattr(bare, "encode_image") and hasattr(small, "encode_image")
    with pytest.raises(NotImplementedError, match="no stimulus images"):
        small.images([0])
    assert bare.subject(1) is small.subject(1) and len(bare.fingerprint) == 16


def test_unknown_subject_and_ids(small):
    with pytest.raises(ValueError, match="subject 3"):
        small.subject(3)
    with pytest.raises(ValueError, match="image ids"):
        small.image_embeddings([10**6])
    with pytest.raises(ValueError, match="subjects must be NSD subjects"):
        SimulatedNSD(subjects=(9,))
    with pytest.raises(ValueError, match="voxel_scale"):
        SimulatedNSD(voxel_scale=0)


def test_subject_data_validates_shapes():
    with pytest.raises(ValueError, match="one label per voxel"):
        SubjectData(1, np.zeros((2, 3, 4)), np.arange(2), np.zeros((1, 4)), np.arange(1), np.array(["Other"] * 3))
    with pytest.raises(ValueError, match="unknown area"):
        SubjectData(1, np.zeros((2, 3, 2)), np.arange(2), np.zeros((1, 2)), np.arange(1), np.array(["Other", "V9"]))


def test_voxels_carry_the_embedding():
    """A linear decoder from training voxels predicts test embeddings well above chance."""
    sim = SimulatedNSD(seed=0, n_train=800, n_test=100, voxel_scale=0.05, subjects=(1,))
    d = sim.subject(1)
    X = d.train_voxels.mean(1)
    Y = sim.image_embeddings(d.train_image_ids).reshape(len(X), -1)
    W = np.linalg.solve(X.T @ X + 100 * np.eye(X.shape[1]), X.T @ (Y - Y.mean(0)))
    P = d.test_voxels @ W
    Yt = sim.image_embeddings(d.test_image_ids).reshape(len(P), -1) - Y.mean(0)
    S = (P / np.linalg.norm(P, axis=1, keepdims=True)) @ (Yt / np.linalg.norm(Yt, axis=1, keepdims=True)).T
    assert (S.argmax(1) == np.arange(len(S))).mean() > 0.2  # chance is 0.01


def test_text_encoder_matches_own_captions(small):
    ids = small.test_image_ids
    img = small.encode_image(ids)
    txt = small.encode_text([c[0] for c in small.captions(ids)])
    img /= np.linalg.norm(img, axis=1, keepdims=True)
    txt /= np.linalg.norm(txt, axis=1, keepdims=True)
    S = img @ txt.T
    assert np.diag(S).mean() > S[~np.eye(len(S), dtype=bool)].mean() + 0.2


def test_ground_truth_is_exposed_and_planted():
    sim = SimulatedNSD(seed=0, n_train=1000, n_test=100, voxel_scale=0.02)
    gt = sim.ground_truth
    assert set(gt.region_factors) == set(REGIONS)
    assert gt.redundant and gt.synergistic
    imp = gt.region_importance
    assert set(imp) == set(REGIONS) and all(v >= -1e-9 for v in imp.values())
    ranking = gt.importance_ranking()
    assert ranking[0] == "Place" and ranking[-1] == "Vision"  # the paper's Fig. 4 pattern, planted


def test_synergy_is_planted():
    """Action: little linear information in Body or Vision alone, nearly all in both."""
    sim = SimulatedNSD(seed=0, n_train=1500, n_test=10, voxel_scale=0.02, subjects=(1,))
    ids = np.arange(sim.n_images)
    codes = sim.region_codes(ids)
    action = sim._codes["action"][ids]

    def r2(X):
        X = np.hstack([X, np.ones((len(X), 1))])
        coef, *_ = np.linalg.lstsq(X, action, rcond=None)
        return 1 - ((action - X @ coef) ** 2).sum() / ((action - action.mean(0)) ** 2).sum()

    assert r2(codes["Body"]) < 0.35 and r2(codes["Vision"]) < 0.05
    assert r2(np.hstack([codes["Body"], codes["Vision"]])) > 0.99


def test_default_builds_fast_and_small():
    t = time.perf_counter()
    sim = SimulatedNSD(seed=0)
    d = sim.subject(1)
    assert time.perf_counter() - t < 10
    total = sum(sim.subject(s).train_voxels.nbytes + sim.subject(s).test_voxels.nbytes for s in sim.subjects)
    assert total + sim._embeddings.nbytes < 2 * 2**30
    assert sim.simulated and "simulated" in sim.label
    assert d.train_voxels.shape[0] == 2400


def test_default_simulator_is_pinned():
    """Trained models and captioners are cached under a key that hashes the dataset fingerprint: the
    default simulator's fingerprint, config and data must stay exactly these."""
    sim = SimulatedNSD(seed=0)
    assert sim.fingerprint == "21421e86e4209478"
    assert sim.config() == {
        "kind": "SimulatedNSD", "version": 1, "seed": 0, "subjects": (1, 2, 5, 7), "n_train": 2400,
        "n_test": 500, "n_repeats": 3, "voxel_scale": 0.25, "n_tokens": 16, "dim": 64, "hidden": 256,
        "code_noise": 1.0, "voxel_noise": 1.0, "detail_noise": 0.3, "clip_gap": 1.3,
    }  # fmt: skip
    assert sim.captions([0, 2500]) == [
        ["Three people standing next to two dogs in a grassy park.", "There are two black dogs in this grassy park.",
         "Two dogs in a grassy park.", "A view of a grassy park with two black dogs.",
         "Grassy park scene showing two dogs and three people standing around."],
        ["A photo of a white bus in the road.", "A white bus in a road.", "Road scene showing a bus",
         "There is a bus in this road", "There is a white bus in this road."],
    ]  # fmt: skip
    # floats within a tolerance: BLAS kernels differ between CPUs in the last bits
    np.testing.assert_allclose(sim.image_embeddings([0, 2500])[:, 0, :3],
                               [[-1.1383392, 1.090563, 1.9005027], [0.7081273, -0.4716258, 0.2119783]], rtol=1e-5)
    d = sim.subject(1)
    assert d.n_voxels == 3931 and list(d.voxel_area[:4]) == ["Other", "Other", "EBA", "VWFA-1"]
    assert list(d.train_image_ids[:2]) == [500, 501] and list(d.test_image_ids) == list(range(500))
    np.testing.assert_allclose(d.train_voxels[0, :, :2], [[0.1525139, 1.1606588], [2.6737533, -1.2454565],
                                                          [-0.5804518, 2.1181219]], rtol=1e-4, atol=1e-5)
    np.testing.assert_allclose(d.test_voxels[499, :3], [-0.7958528, -0.0062983, -0.5261772], rtol=1e-4, atol=1e-5)


def test_caption_grammar_and_parser_agree():
    from otnsd.data.simulated.grammar import parse_caption, scene_captions
    from otnsd.data.simulated.scenes import BLOCKS, PLACES, factor_vectors

    scene = {"place": "park", "objects": [("dog", 2)], "color": "black", "people": 3, "action": "standing",
             "faces": 0, "text": None, "lowlevel": np.zeros(BLOCKS["lowlevel"])}
    caps = scene_captions(scene, np.random.default_rng(0))
    assert len(caps) == 5 and len(set(caps)) == 5
    truth = factor_vectors(scene)
    for c in caps:
        parsed = parse_caption(c)
        assert set(parsed) <= set(BLOCKS) - {"lowlevel"}  # only what a caption can say
        for k, v in parsed.items():
            np.testing.assert_array_equal(v, truth[k], err_msg=f"{k} of {c!r}")
    assert PLACES[parse_caption("A dog in an open field")["place"].argmax()] == "field"
    assert parse_caption("Nothing to see") == {}


def test_open_dataset_is_the_one_factory():
    from otnsd.data import load_dataset, open_dataset

    tiny = dict(seed=2, n_train=10, n_test=5, voxel_scale=0.01)
    sim = open_dataset("simulated", **tiny)
    assert isinstance(sim, SimulatedNSD) and sim.cfg.seed == 2 and sim.cfg.n_train == 10
    assert sim.fingerprint == SimulatedNSD(**tiny).fingerprint
    # subjects: the subjects needed, never the subjects simulated (that would change the fingerprint)
    assert open_dataset("simulated", subjects=[1, 2], **tiny).fingerprint == sim.fingerprint
    two = open_dataset("simulated", simulated_subjects=(1, 2), subjects=[2], **tiny)
    assert two.subjects == (1, 2) and two.fingerprint == SimulatedNSD(subjects=(1, 2), **tiny).fingerprint
    with pytest.raises(ValueError, match="not \\[5\\]"):
        open_dataset("simulated", simulated_subjects=(1, 2), subjects=[5], **tiny)
    with pytest.raises(TypeError, match="takes no option \\['cache_dir'\\]"):
        open_dataset("simulated", cache_dir="/tmp/x")
    with pytest.raises(TypeError, match="takes no option \\['n_train'\\]"):
        open_dataset("nsd", root="/nowhere", n_train=3)
    # load_dataset: the alias that takes the classes' own keyword arguments (python -m otnsd.train)
    cli = dict(tiny, subjects=(1, 2))
    assert load_dataset("simulated", **cli).fingerprint == SimulatedNSD(**cli).fingerprint == two.fingerprint
    assert load_dataset().fingerprint == open_dataset().fingerprint == "21421e86e4209478"


def test_load_dataset_by_name(monkeypatch):
    from otnsd.data import load_dataset, open_dataset

    sim = load_dataset("simulated", seed=2, n_train=10, n_test=5, voxel_scale=0.01)
    assert isinstance(sim, SimulatedNSD) and sim.cfg.seed == 2
    monkeypatch.delenv("OTNSD_DATA", raising=False)
    with pytest.raises(FileNotFoundError, match="OTNSD_DATA"):
        load_dataset("nsd")
    with pytest.raises(FileNotFoundError, match="OTNSD_DATA"):
        open_dataset("nsd", seed=3, root=None, features=None)
    with pytest.raises(ValueError, match="unknown dataset"):
        load_dataset("coco")
    assert open_dataset("simulated", seed=4, root=None, features=None).cfg.seed == 4
    assert open_dataset("simulated", seed=4, root=None, features=None, subjects=[1, 2]).subjects == (1, 2, 5, 7)
    with pytest.raises(ValueError, match="not \\[3\\]"):
        open_dataset("simulated", seed=4, root=None, features=None, subjects=[1, 3])
    with pytest.raises(ValueError, match="real NSD only"):
        open_dataset("simulated", seed=0, root="/data/nsd", features=None)


def test_corrupted_training_trials_and_clean_test_trials():
    """Lapsed trials carry noise only (or another image's response); mislabelled rows hold another
    training image's responses, swapped in pairs; test trials and the other trials stay as clean."""
    tiny = dict(seed=1, n_train=200, n_test=40, voxel_scale=0.02, code_noise=0.0, voxel_noise=0.0)
    clean = SimulatedNSD(**tiny).subject(1)
    noise = SimulatedNSD(lapse_rate=0.3, **tiny)
    lapsed_subject = noise.subject(1)
    lapsed = lapsed_subject.meta["lapsed"]
    assert 0.25 < lapsed.mean() < 0.35
    assert np.all(lapsed_subject.train_voxels[lapsed] == 0)  # no noise here: a lapse is silence
    np.testing.assert_array_equal(lapsed_subject.train_voxels[~lapsed], clean.train_voxels[~lapsed])
    np.testing.assert_array_equal(lapsed_subject.test_voxels, clean.test_voxels)
    other = SimulatedNSD(lapse_rate=0.3, lapse_kind="other", **tiny).subject(1)
    row, rep = np.argwhere(other.meta["lapsed"])[0]
    mean_response = clean.train_voxels.mean(1)  # noiseless: every repeat of an image is the same
    match = np.flatnonzero(np.all(np.isclose(mean_response, other.train_voxels[row, rep], atol=1e-5), axis=1))
    assert len(match) == 1 and match[0] != row  # another training image's response

    swapped = SimulatedNSD(mislabel_rate=0.2, **tiny).subject(1)
    true_ids = swapped.meta["true_image_ids"]
    moved = true_ids != swapped.train_image_ids
    assert moved.sum() == 40 and set(true_ids[moved]) == set(swapped.train_image_ids[moved])  # pairs swapped
    index = {int(i): k for k, i in enumerate(clean.train_image_ids)}
    np.testing.assert_array_equal(swapped.train_voxels, clean.train_voxels[[index[int(i)] for i in true_ids]])
    np.testing.assert_array_equal(swapped.test_voxels, clean.test_voxels)
    # a corrupted simulator is another dataset (its own run cache); the clean one's fingerprint is kept
    assert len({SimulatedNSD(**tiny).fingerprint, noise.fingerprint, SimulatedNSD(mislabel_rate=0.2, **tiny).fingerprint}) == 3
    assert "lapse_rate" not in SimulatedNSD(**tiny).config()
    with pytest.raises(ValueError, match="lapse_rate"):
        SimulatedNSD(lapse_rate=1.5, **tiny)
    with pytest.raises(ValueError, match="lapse_kind"):
        SimulatedNSD(lapse_rate=0.1, lapse_kind="silence", **tiny)


def test_difficulty_presets_and_the_stimulus_fingerprint():
    """open_dataset(difficulty="nsd") raises the trial noise (calibrated: MSE at about a third of the
    ceiling's CIDEr); the images, embeddings and captions, and so the captioner's cache key
    (stimulus_fingerprint), do not depend on the brain's noise or corrupted trials."""
    from otnsd.data import DIFFICULTIES, open_dataset

    tiny = dict(n_train=60, n_test=10, voxel_scale=0.02)
    easy = open_dataset("simulated", seed=3, **tiny)
    hard = open_dataset("simulated", seed=3, difficulty="nsd", **tiny)
    assert easy.fingerprint == open_dataset("simulated", seed=3, difficulty="easy", **tiny).fingerprint
    assert (hard.cfg.code_noise, hard.cfg.voxel_noise) == (DIFFICULTIES["nsd"]["code_noise"], DIFFICULTIES["nsd"]["voxel_noise"])
    assert hard.cfg.code_noise > easy.cfg.code_noise and hard.fingerprint != easy.fingerprint
    # explicit fields override the preset
    assert open_dataset("simulated", seed=3, difficulty="nsd", code_noise=0.5, **tiny).cfg.code_noise == 0.5
    lapsed = open_dataset("simulated", seed=3, difficulty="nsd", lapse_rate=0.2, **tiny)
    assert easy.stimulus_fingerprint == hard.stimulus_fingerprint == lapsed.stimulus_fingerprint
    np.testing.assert_array_equal(easy.image_embeddings(easy.test_image_ids), hard.image_embeddings(hard.test_image_ids))
    assert easy.captions([0, 5]) == hard.captions([0, 5])
    other_images = open_dataset("simulated", seed=3, detail_noise=0.5, **tiny)
    assert other_images.stimulus_fingerprint != easy.stimulus_fingerprint
    assert open_dataset("simulated", seed=4, **tiny).stimulus_fingerprint != easy.stimulus_fingerprint
    with pytest.raises(ValueError, match="unknown difficulty 'hard'"):
        open_dataset("simulated", difficulty="hard")


def _r2(X, Y):
    """R^2 of least squares (with intercept) of Y on X."""
    X = np.hstack([X - X.mean(0), np.ones((len(X), 1))])
    Y = Y - Y.mean(0)
    B, *_ = np.linalg.lstsq(X, Y, rcond=None)
    return 1 - ((Y - X @ B) ** 2).sum() / (Y**2).sum()


def test_patch_tokens_put_objects_faces_text_in_random_slots():
    """token_layout="patches": each of objects, faces, text is one token in a random slot per image
    (decodable at its slot, not at a fixed one); 3 detail slots carry no factor; the brain's codes
    are those of the default layout (what, not where); the default layout is unchanged."""
    from otnsd.data.simulated.dataset import DETAIL_TOKENS, PATCH_FACTORS

    tiny = dict(n_train=1000, n_test=100, subjects=(1,), voxel_scale=0.02)
    flat = SimulatedNSD(seed=3, **tiny)
    patches = SimulatedNSD(seed=3, token_layout="patches", **tiny)
    assert flat.patch_slots is None and "token_layout" not in flat.config()
    assert flat.fingerprint == SimulatedNSD(seed=3, token_layout="global", **tiny).fingerprint
    assert patches.stimulus_fingerprint != flat.stimulus_fingerprint  # other embeddings: its own captioner
    ids = np.arange(patches.n_images)
    E, slots = patches.image_embeddings(ids), patches.patch_slots
    assert slots.shape == (len(ids), len(PATCH_FACTORS) + DETAIL_TOKENS)
    assert all(len(set(row)) == len(row) for row in slots) and len({tuple(r) for r in slots[:, :3]}) > len(ids) // 2
    for k, factor in enumerate(PATCH_FACTORS):
        code = patches.factor_codes(ids, factor)
        at_slot = _r2(E[ids, slots[:, k]], code)
        # at a fixed slot only what other factors tell of it (faces: people; objects: place) and 3/16 of the images
        assert at_slot > 0.9 and _r2(E[:, 0], code) < at_slot - 0.4
        assert _r2(flat.image_embeddings(ids)[:, 0], code) > 0.6  # the default layout: every token has it
    assert _r2(E[ids, slots[:, -1]], patches.factor_codes(ids, "place")) < 0.1  # detail: no factor (overfit ~0.05)
    for region, code in patches.region_codes(ids[:40]).items():
        np.testing.assert_array_equal(code, flat.region_codes(ids[:40])[region])
    np.testing.assert_array_equal(patches.subject(1).test_voxels, flat.subject(1).test_voxels)
    with pytest.raises(ValueError, match="token_layout"):
        SimulatedNSD(token_layout="grid", **tiny)
    with pytest.raises(ValueError, match="n_tokens >= 6"):
        SimulatedNSD(token_layout="patches", n_tokens=4, **tiny)


def test_control_simulators_plant_what_they_say():
    """control="null": no synergy, no redundancy, regions of about equal importance; "permuted":
    the default's codes in other regions (importance, synergy and redundancy move with them), the
    same images."""
    tiny = dict(seed=0, n_train=1000, n_test=100, voxel_scale=0.02)
    default, null, permuted = (SimulatedNSD(**tiny, control=c) for c in ("none", "null", "permuted"))
    assert "control" not in default.config() and null.config()["control"] == "null"

    gt = null.ground_truth
    assert gt.synergistic == {} and gt.redundant == {}
    imp = gt.region_importance
    assert max(imp.values()) < 1.6 * min(imp.values())  # default: Place 8x Vision
    codes = null.region_codes(np.arange(null.n_images))
    action = null.factor_codes(np.arange(null.n_images), "action")
    assert _r2(codes["Body"], action) > 0.99 and _r2(codes["Vision"], action) < 0.01  # no mask to undo
    people = null.factor_codes(np.arange(null.n_images), "people")
    assert _r2(codes["Face"], people[:, 1:]) < 0.7  # presence no longer in Face's code (faces imply it in part)
    assert _r2(codes["Other"], null.factor_codes(np.arange(null.n_images), "place")) < 0.5  # nor place in Other's
    assert null.stimulus_fingerprint != default.stimulus_fingerprint  # the embedding's weights changed

    gt = permuted.ground_truth
    assert gt.importance_ranking()[0] == "Vision" and gt.importance_ranking()[-1] == "Place"
    assert gt.synergistic == {"action": ("Body", "Place")}
    assert gt.redundant == {"people presence": ("Word", "Body"), "place": ("Vision", "Other")}
    ids = np.arange(50)
    moved, before = permuted.region_codes(ids), default.region_codes(ids)
    for region, role in {"Vision": "Place", "Place": "Vision", "Face": "Word", "Word": "Face", "Body": "Body"}.items():
        np.testing.assert_array_equal(moved[region], before[role])
    assert permuted.stimulus_fingerprint == default.stimulus_fingerprint  # the captioner is shared
    np.testing.assert_array_equal(permuted.image_embeddings(ids), default.image_embeddings(ids))
    assert permuted.subject(1).train_voxels.shape == default.subject(1).train_voxels.shape
    with pytest.raises(ValueError, match="control must be one of"):
        SimulatedNSD(**tiny, control="shuffled")
