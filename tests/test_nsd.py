"""Real-NSD loader on a tiny NSD copy written in NSD's exact formats (tests/nsd_fixtures.py)."""

import json
import shutil
import warnings

import h5py
import nsd_fixtures as F
import numpy as np
import pytest
import scipy.io

from otnsd.data import (
    NSD,
    BrainImageDataset,
    MissingFeaturesError,
    SubjectData,
    load_dataset,
    open_dataset,
)

SUBJECTS = (1, 2)


@pytest.fixture(scope="module")
def master(tmp_path_factory):
    root = tmp_path_factory.mktemp("nsd")
    info = F.write_nsd(root)
    F.write_webdataset(root)
    return info


@pytest.fixture
def root(master, tmp_path):
    """A private copy, for tests that remove or change files."""
    dst = tmp_path / "nsd"
    shutil.copytree(master.root, dst)
    return dst


@pytest.fixture(scope="module")
def nsd(master, tmp_path_factory):
    return NSD(master.root, SUBJECTS, cache_dir=tmp_path_factory.mktemp("cache"))


@pytest.fixture(scope="module")
def expected():
    """Per subject: expected z-scored rows of every covered trial, (n_trials, V)."""
    out = {}
    for s, n in F.SESSIONS.items():
        m = F.mask(s)
        out[s] = np.concatenate([F.expected_session(s, k)[:, m] for k in range(1, n + 1)])
    return out


def _repeats(subject):
    """0-based 73k id -> trials showing it, in order, split into training and shared images."""
    ids, shared = F.trial_ids(subject)
    train, test = {}, {}
    for t, (i, sh) in enumerate(zip(ids.tolist(), shared.tolist())):
        (test if sh else train).setdefault(i, []).append(t)
    return train, test


# ------------------------------------------------------------------------------------ voxels
def test_is_a_dataset(nsd):
    assert isinstance(nsd, BrainImageDataset)
    assert nsd.label == "NSD" and nsd.simulated is False
    assert nsd.subjects == SUBJECTS
    d = nsd.subject(1)
    assert isinstance(d, SubjectData)
    assert d.n_voxels == F.mask(1).sum() and nsd.subject(2).n_voxels == F.mask(2).sum()
    assert d.train_voxels.dtype == np.float16 and d.test_voxels.dtype == np.float32


def test_voxels_are_zscored_betas_in_c_order(nsd, expected):
    d = nsd.subject(1)
    train, _ = _repeats(1)
    # image 1001 was shown at trials 3, 200 (session 1) and 1000 (session 2)
    i = F.image_id(1, 1001)
    row = int(np.flatnonzero(d.train_image_ids == i)[0])
    assert train[i] == [3, 200, 1000]
    for rep, t in enumerate(train[i]):
        np.testing.assert_allclose(d.train_voxels[row, rep], expected[1][t], atol=2e-3, rtol=1e-3)
    # C-order of the (X, Y, Z) mask: voxel k is the k-th of np.argwhere
    coords = np.argwhere(F.mask(1))
    k = 17
    x, y, z = coords[k]
    session1 = F.raw_betas(1, 1)[:, x, y, z] / 300.0
    want = (session1[3] - session1.mean()) / session1.std()
    assert d.train_voxels[row, 0, k] == pytest.approx(want, abs=2e-3)


def test_each_session_is_zscored_on_its_own(nsd):
    d = nsd.subject(1)
    k = int(np.flatnonzero(np.all(np.argwhere(F.mask(1)) == F.CONSTANT_VOXEL, axis=1))[0])
    i = F.image_id(1, 1001)
    row = int(np.flatnonzero(d.train_image_ids == i)[0])
    assert d.train_voxels[row, 2, k] == 0  # constant over session 2: z-score 0, not NaN
    assert d.train_voxels[row, 0, k] != 0
    assert np.isfinite(d.train_voxels).all() and np.isfinite(d.test_voxels).all()
    assert d.meta["constant_voxel_sessions"] == 1


def test_training_rows_keep_repeats_and_fill_missing(nsd, expected):
    for s in SUBJECTS:
        d = nsd.subject(s)
        train, _ = _repeats(s)
        np.testing.assert_array_equal(d.train_image_ids, sorted(train))
        assert d.train_voxels.shape == (len(train), 3, d.n_voxels)
        for row, i in enumerate(d.train_image_ids.tolist()):
            trials = train[i]
            want = [trials[k % len(trials)] for k in range(3)]  # a,a,a or a,b,a or a,b,c
            np.testing.assert_allclose(d.train_voxels[row], expected[s][want], atol=2e-3, rtol=1e-3)
        counts = [len(t) for t in train.values()]
        assert d.meta["train_repeat_counts"] == {str(k): counts.count(k) for k in (1, 2, 3)}
        assert d.meta["filled_repeats"] == sum(3 - c for c in counts)
    # the plan's images: subject 2 has one session, so fewer repeats
    d1, d2 = nsd.subject(1), nsd.subject(2)
    i1002 = F.image_id(1, 1002)
    row = int(np.flatnonzero(d1.train_image_ids == i1002)[0])
    np.testing.assert_array_equal(d1.train_voxels[row, 0], d1.train_voxels[row, 2])  # [4, 1100, 4]
    assert F.image_id(2, 1004) not in set(d2.train_image_ids)  # shown in session 2 only


def test_test_rows_average_available_repeats(nsd, expected):
    for s in SUBJECTS:
        d = nsd.subject(s)
        _, test = _repeats(s)
        np.testing.assert_array_equal(d.test_image_ids, nsd.test_image_ids)
        for row, i in enumerate(d.test_image_ids.tolist()):
            np.testing.assert_allclose(d.test_voxels[row], expected[s][test[i]].mean(0), atol=1e-5)
    # shared image 1: three repeats for subject 1, two for subject 2 (one session)
    assert len(_repeats(1)[1][F.image_id(1, 1)]) == 3 and len(_repeats(2)[1][F.image_id(2, 1)]) == 2
    assert not set(nsd.test_image_ids) & set(nsd.subject(1).train_image_ids)


def test_test_set_is_common_to_all_subjects(nsd, master, tmp_path):
    both = sorted(F.image_id(1, k) for k in (1, 2, 3, 1000))  # shared images 4, 5: session 2 only
    np.testing.assert_array_equal(nsd.test_image_ids, both)
    assert nsd.subject(1).meta["test_images_not_common"] == 2
    alone = NSD(master.root, (1,), cache_dir=tmp_path)
    np.testing.assert_array_equal(alone.test_image_ids, sorted(F.image_id(1, k) for k in (1, 2, 3, 4, 5, 1000)))
    np.testing.assert_array_equal(alone.subject(1).test_image_ids, alone.test_image_ids)


# ------------------------------------------------------------------------------------ areas
def test_area_labels(nsd):
    d = nsd.subject(1)
    coords = [tuple(c) for c in np.argwhere(F.mask(1))]
    want = [F.EXPECTED_AREAS.get(c, "Other") for c in coords]
    np.testing.assert_array_equal(d.voxel_area, want)
    assert d.meta["roi_overlap_voxels"] == F.EXPECTED_OVERLAP
    assert d.meta["roi_unlabelled_values"] == 1  # floc-words value 9 has no name
    assert d.region_counts()["Vision"] == 4 and d.area_counts()["EBA"] == 1
    aTL = tuple(c for c, v in F.ROI_LABELS["floc-faces"].items() if v == 5 and c not in F.EXPECTED_AREAS)
    assert all(d.voxel_area[coords.index(c)] == "Other" for c in aTL)


def test_missing_roi_files_warn_and_label_other(root, tmp_path):
    for name in F.ROI_NAMES:
        (root / F.roi_rel(1, name)).unlink()
    with pytest.warns(UserWarning) as record:
        d = NSD(root, SUBJECTS, cache_dir=tmp_path / "c").subject(1)
    roi_warnings = [w for w in record if "ROI files are missing" in str(w.message)]
    assert len(roi_warnings) == 1
    assert all(str(root / F.roi_rel(1, n)) in str(roi_warnings[0].message) for n in F.ROI_NAMES)
    assert set(d.voxel_area) == {"Other"}
    # a cached load still says so
    with pytest.warns(UserWarning, match="ROI files are missing"):
        again = NSD(root, SUBJECTS, cache_dir=tmp_path / "c").subject(1)
    assert again.meta["from_cache"]


def test_one_missing_label_table_drops_that_atlas_only(root, tmp_path):
    (root / F.ctab_rel(1, "floc-words")).unlink()
    with pytest.warns(UserWarning, match="floc-words.mgz.ctab"):
        d = NSD(root, SUBJECTS, cache_dir=tmp_path).subject(1)
    assert "VWFA-1" not in set(d.voxel_area) and "V1v" in set(d.voxel_area)


# ------------------------------------------------------------------------------------ images, captions, features
def test_captions_by_id(nsd, master):
    ids = master.caption_ids[::-1]
    assert nsd.captions(ids) == [F.caption_list(i) for i in ids]
    assert {F.coco_split(i) for i in ids} == {"train2017", "val2017"}
    assert any(len(F.caption_list(i)) == 6 for i in ids)


def test_images_by_id(nsd, master):
    ids = [master.image_ids[2], master.image_ids[0], master.image_ids[2]]
    imgs = nsd.images(ids)
    assert imgs.shape == (3, 425, 425, 3) and imgs.dtype == np.uint8
    for img, i in zip(imgs, ids):
        np.testing.assert_array_equal(img, F.image_pixels(i))
    assert not nsd.images([5]).any()  # never written: imgBrick's fill value


def test_features_lookup_order_and_missing(master, tmp_path):
    ids = [F.image_id(1, 3), F.image_id(1, 1), F.image_id(1, 1001), 5]
    feats = F.write_features(tmp_path / "clip.h5", ids)
    ds = NSD(master.root, SUBJECTS, features=tmp_path / "clip.h5", cache_dir=tmp_path)
    assert ds.embedding_shape == (4, 8)
    out = ds.image_embeddings([5, ids[0], 5, ids[2]])
    assert out.dtype == np.float32 and out.shape == (4, 4, 8)
    np.testing.assert_array_equal(out, feats[[3, 0, 3, 2]])
    assert ds.image_embeddings([]).shape == (0, 4, 8)
    with pytest.raises(MissingFeaturesError, match=r"1 of the requested.*\b17\b.*CLIP ViT-L/14"):
        ds.image_embeddings([ids[0], 17])
    st = (tmp_path / "clip.h5").stat()
    assert ds.config()["features"] == {"name": "clip.h5", "size": st.st_size, "mtime_ns": st.st_mtime_ns}


def test_no_features_is_an_error(nsd):
    with pytest.raises(MissingFeaturesError, match=r"\(0, 42\).*CLIP ViT-L/14"):
        nsd.image_embeddings([42, 0])
    with pytest.raises(MissingFeaturesError, match="compute them first"):
        _ = nsd.embedding_shape
    assert "embeddings=none" in repr(nsd)


# ------------------------------------------------------------------------------------ cache
def test_cache_second_load_reads_no_betas(root, tmp_path, monkeypatch):
    cache = tmp_path / "cache"
    first = NSD(root, SUBJECTS, cache_dir=cache)
    a = [first.subject(s) for s in SUBJECTS]
    assert not a[0].meta["from_cache"] and len(list(cache.glob("*.h5"))) == 2
    assert not list(cache.glob("*.tmp*"))

    real_open = h5py.File

    def guarded(path, *args, **kwargs):
        assert "betas_session" not in str(path), f"opened {path}"
        return real_open(path, *args, **kwargs)

    monkeypatch.setattr(h5py, "File", guarded)
    second = NSD(root, SUBJECTS, cache_dir=cache)
    b = [second.subject(s) for s in SUBJECTS]
    for x, y in zip(a, b):
        assert y.meta["from_cache"]
        for field in ("train_voxels", "train_image_ids", "test_voxels", "test_image_ids", "voxel_area"):
            np.testing.assert_array_equal(getattr(x, field), getattr(y, field))
            assert getattr(x, field).dtype == getattr(y, field).dtype
    monkeypatch.undo()

    # fewer sessions: another cache entry, computed afresh
    (root / F.betas_rel(1, 2)).unlink()
    third = NSD(root, SUBJECTS, cache_dir=cache)
    c = third.subject(1)
    assert not c.meta["from_cache"] and c.meta["sessions"] == 1
    assert len(list(cache.glob("*.h5"))) == 3


def test_sessions_after_a_gap_are_ignored(root, tmp_path):
    shutil.copy(root / F.betas_rel(1, 2), root / F.betas_rel(1, 4))
    with pytest.warns(UserWarning, match=r"sessions \[4\] are ignored.*session 03 is missing"):
        ds = NSD(root, SUBJECTS, cache_dir=tmp_path)
    assert ds.subject(1).meta["sessions"] == 2


# ------------------------------------------------------------------------------------ webdataset
def test_webdataset_source(master, nsd, tmp_path):
    wds = NSD(master.root, SUBJECTS, source="webdataset", cache_dir=tmp_path)
    assert wds.config()["source"] == "webdataset"
    np.testing.assert_array_equal(wds.test_image_ids, [73, 146, 292])
    for s in SUBJECTS:
        d = wds.subject(s)
        assert isinstance(d, SubjectData)
        splits = F.WDS_SPLITS[s]
        np.testing.assert_array_equal(d.train_image_ids, sorted(splits["train"] + splits["val"]))
        for row, i in enumerate(d.train_image_ids.tolist()):
            np.testing.assert_array_equal(d.train_voxels[row], F.wds_voxels(i, d.n_voxels))
        for row, i in enumerate(d.test_image_ids.tolist()):
            want = F.wds_voxels(i, d.n_voxels).astype(np.float32).mean(0)
            np.testing.assert_allclose(d.test_voxels[row], want, atol=1e-6)
        np.testing.assert_array_equal(d.voxel_area, nsd.subject(s).voxel_area)  # raw ROI files, same order
    again = NSD(master.root, SUBJECTS, source="webdataset", cache_dir=tmp_path).subject(1)
    assert again.meta["from_cache"]
    np.testing.assert_array_equal(again.train_voxels, wds.subject(1).train_voxels)


def test_webdataset_without_roi_files(tmp_path):
    F.write_webdataset(tmp_path / "wds")
    with pytest.warns(UserWarning, match="nsdgeneral.nii.gz"):
        d = NSD(tmp_path / "wds", SUBJECTS, source="webdataset", cache_dir=tmp_path / "c").subject(1)
    assert set(d.voxel_area) == {"Other"} and d.n_voxels == F.mask(1).sum()


# ------------------------------------------------------------------------------------ errors
MISSING = {
    "expdesign": F.EXPDESIGN,
    "nsdgeneral": F.roi_rel(1, "nsdgeneral"),
    "betas": F.betas_rel(2, 1),
    "stim_info": F.STIM_INFO,
    "coco_train": F.CAPTIONS["train2017"],
    "coco_val": F.CAPTIONS["val2017"],
    "stimuli": F.STIMULI,
}


def _use_everything(root, master, cache_dir, **kwargs):
    ds = NSD(root, SUBJECTS, cache_dir=cache_dir, **kwargs)
    for s in SUBJECTS:
        ds.subject(s)
    ds.captions(master.caption_ids)
    ds.images(master.image_ids)
    return ds


def test_everything_present_is_fine(root, master, tmp_path):
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        _use_everything(root, master, tmp_path)


@pytest.mark.parametrize("name", MISSING)
def test_missing_file_is_named(name, root, master, tmp_path):
    rel = MISSING[name]
    (root / rel).unlink()
    with pytest.raises(FileNotFoundError) as err:
        _use_everything(root, master, tmp_path)
    msg = str(err.value)
    assert str(root / rel) in msg  # where it was looked for
    if rel.startswith("coco/"):
        assert f"(COCO: annotations/{rel.rsplit('/', 1)[1]}" in msg
    else:
        assert f"(NSD: {rel})" in msg  # what NSD calls it


def test_missing_root_says_how_to_set_it(tmp_path, monkeypatch):
    with pytest.raises(FileNotFoundError, match=r"pass root=.*or set OTNSD_DATA") as err:
        NSD(tmp_path / "nowhere")
    assert str(tmp_path / "nowhere") in str(err.value)
    monkeypatch.delenv("OTNSD_DATA", raising=False)
    with pytest.raises(FileNotFoundError, match=r"pass root=.*or set OTNSD_DATA"):
        NSD()
    monkeypatch.setenv("OTNSD_DATA", str(tmp_path))
    with pytest.raises(FileNotFoundError, match="nsd_expdesign.mat"):
        NSD(subjects=(1,))


def test_missing_features_file_and_tars(root, tmp_path):
    with pytest.raises(FileNotFoundError, match="CLIP ViT-L/14") as err:
        NSD(root, SUBJECTS, features=tmp_path / "clip.h5")
    assert str(tmp_path / "clip.h5") in str(err.value)
    for tar in root.rglob("test_subj02_*.tar"):
        tar.unlink()
    with pytest.raises(FileNotFoundError, match=r"test_subj02_\*\.tar") as err:
        NSD(root, SUBJECTS, source="webdataset")
    assert str(root) in str(err.value)


def test_bad_subjects_and_source(master):
    with pytest.raises(ValueError, match="1-8"):
        NSD(master.root, (1, 9))
    with pytest.raises(ValueError, match="1-8"):
        NSD(master.root, (0,))
    with pytest.raises(ValueError, match="source"):
        NSD(master.root, (1,), source="nifti")


def test_betas_of_wrong_shape(root, tmp_path):
    with h5py.File(root / F.betas_rel(1, 2), "w") as f:
        f.create_dataset("betas", data=np.zeros((750, 4, 5, 7), dtype=np.int16))
    with pytest.raises(ValueError, match=r"expected \(750, 4, 5, 6\)") as err:
        NSD(root, SUBJECTS, cache_dir=tmp_path).subject(1)
    assert F.betas_rel(1, 2) in str(err.value)


def test_expdesign_of_wrong_shape(root, tmp_path):
    d = F.design()
    d["subjectim"] = d["subjectim"][:, :9999]
    scipy.io.savemat(root / F.EXPDESIGN, d)
    with pytest.raises(ValueError, match=r"subjectim has shape \(8, 9999\); expected \(8, 10000\)"):
        NSD(root, SUBJECTS, cache_dir=tmp_path).subject(1)


def test_unreadable_ctab(root, tmp_path):
    (root / F.ctab_rel(1, "floc-faces")).write_text("OFA is one\n")
    with pytest.raises(ValueError, match="expected 'index name'") as err:
        NSD(root, SUBJECTS, cache_dir=tmp_path).subject(1)
    assert str(root / F.ctab_rel(1, "floc-faces")) in str(err.value)


def test_bad_image_ids(nsd):
    with pytest.raises(ValueError, match="73k"):
        nsd.images([73000])
    with pytest.raises(ValueError, match="integers"):
        nsd.captions([1.5])


# ------------------------------------------------------------------------------------ config, load_dataset
def test_config_and_fingerprint(root, tmp_path):
    ds = NSD(root, SUBJECTS, cache_dir=tmp_path)
    cfg = ds.config()
    assert cfg["kind"] == "NSD" and cfg["subjects"] == [1, 2] and cfg["source"] == "raw"
    names = [name for name, _ in cfg["files"]]
    assert F.betas_rel(1, 2) in names and F.EXPDESIGN in names and F.roi_rel(2, "floc-words") in names
    assert str(root) not in json.dumps(cfg)  # relative paths: the same data anywhere
    fp = ds.fingerprint
    assert NSD(root, SUBJECTS, cache_dir=tmp_path).fingerprint == fp
    (root / F.betas_rel(1, 2)).unlink()
    assert NSD(root, SUBJECTS, cache_dir=tmp_path).fingerprint != fp


def test_load_dataset_nsd(master, tmp_path):
    ds = load_dataset("nsd", root=master.root, subjects=(1,), cache_dir=tmp_path)
    assert isinstance(ds, NSD)
    assert ds.subject(1).train_voxels.shape[1:] == (3, F.mask(1).sum())


def test_open_dataset_nsd(master, tmp_path):
    ds = open_dataset("nsd", seed=5, root=master.root, subjects=[1], cache_dir=tmp_path, source="webdataset")
    assert isinstance(ds, NSD) and ds.subjects == (1,) and ds.source == "webdataset"
    assert ds.fingerprint == NSD(master.root, (1,), source="webdataset", cache_dir=tmp_path).fingerprint
    with pytest.raises(NotImplementedError, match="simulator"):
        ds.ground_truth  # noqa: B018


def test_a_model_trains_on_nsd_with_clip_features(master, tmp_path):
    """End to end: NSD files + a features file -> the training loop -> test embeddings."""
    import h5py

    from otnsd.train import TrainConfig, fit

    plain = NSD(master.root, (1,), cache_dir=tmp_path / "cache")
    d = plain.subject(1)
    ids = np.union1d(d.train_image_ids, d.test_image_ids)
    F.write_features(tmp_path / "clip.h5", ids)
    with h5py.File(tmp_path / "clip.h5", "a") as f:
        f.attrs["complete"] = False  # as an interrupted extraction leaves it
    with pytest.raises(ValueError, match="unfinished"):
        NSD(master.root, (1,), features=tmp_path / "clip.h5", cache_dir=tmp_path / "cache").image_embeddings(ids[:1])
    with h5py.File(tmp_path / "clip.h5", "a") as f:
        f.attrs["complete"] = True
    ds = NSD(master.root, (1,), features=tmp_path / "clip.h5", cache_dir=tmp_path / "cache")
    assert ds.subject(1).train_voxels.dtype == np.float16
    cfg = TrainConfig(epochs=1, batch_size=4, val_images=2,
                      encoder={"width": 8, "n_voxel_tokens": 2, "depth": 1, "heads": 1, "dim_head": 4})
    run = fit(cfg, ds, runs_dir=tmp_path / "runs", progress=False)
    pred = run.predict_test(ds, 1)
    assert pred.shape == (len(d.test_image_ids), 4, 8) and np.isfinite(pred).all()
    assert np.isfinite(run.history["train_loss"]).all()


def test_notebook_02_runs_on_nsd_by_parameters_only(master, tmp_path, monkeypatch):
    """The training notebook on the tiny NSD copy: real data by changing parameters only."""
    from pathlib import Path

    import nbformat
    import papermill as pm

    repo = Path(__file__).resolve().parent.parent
    ds = NSD(master.root, SUBJECTS, cache_dir=tmp_path / "cache")
    ids = np.unique(np.concatenate([ds.subject(s).train_image_ids for s in SUBJECTS] + [ds.test_image_ids]))
    F.write_features(tmp_path / "clip.h5", ids)
    monkeypatch.chdir(repo)
    monkeypatch.setenv("OTNSD_FIGURES", str(tmp_path / "figs"))
    monkeypatch.setenv("OTNSD_RUNS", str(tmp_path / "runs"))
    out = tmp_path / "02.ipynb"
    pm.execute_notebook("notebooks/02_training.ipynb", str(out), progress_bar=False, kernel_name="python3", parameters={
        "dataset": "nsd", "data_root": str(master.root), "clip_features": str(tmp_path / "clip.h5"),
        "cross_subjects": [1, 2], "epochs": 1, "cross_epochs": 1, "batch_size": 8, "progress": False})
    nb = nbformat.read(out, as_version=4)
    text = "".join(o.get("text", "") for c in nb.cells if c.cell_type == "code" for o in c.outputs)
    assert "subjects=[1, 2]" in text and "embeddings=4x8" in text
    assert "NSD, subject 1 test images" in text and "MSE+OT-S1" in text
    assert "simulated data" not in text and "OT-S1 plan on 4 test images" in text
    assert (tmp_path / "figs" / "02_fig1_correlation_heatmaps.png").exists()


def test_cache_misses_when_a_file_is_replaced_by_content_of_the_same_size(root, tmp_path):
    import os

    cache = tmp_path / "cache"
    path = root / F.betas_rel(1, 1)
    other = tmp_path / "other.hdf5"  # the session's trials in reverse order: other voxels per image
    shutil.copy(path, other)
    with h5py.File(other, "r+") as f:
        f["betas"][...] = f["betas"][...][::-1]
    size = max(path.stat().st_size, other.stat().st_size) + 64
    for p in (path, other):  # HDF5 ignores bytes past its end: pad both to one size
        with open(p, "ab") as f:
            f.write(b"\0" * (size - p.stat().st_size))
    first = NSD(root, (1,), cache_dir=cache)
    before, fingerprint = first.subject(1), first.fingerprint
    os.replace(other, path)
    assert path.stat().st_size == size
    after = NSD(root, (1,), cache_dir=cache).subject(1)
    assert not after.meta["from_cache"]
    assert not np.array_equal(before.train_voxels, after.train_voxels)
    assert NSD(root, (1,), cache_dir=cache).fingerprint != fingerprint  # trained-model caches miss too
