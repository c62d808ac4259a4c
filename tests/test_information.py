"""Gaussian mutual information and the MMI partial-information decomposition against closed forms
and toy systems whose answer is known (pure synergy, pure redundancy, pure unique information)."""

import numpy as np
import pytest

from otnsd.analysis.information import gaussian_mi, pid, reduce_dims


def _normal(seed, *shape):
    return np.random.default_rng(seed).standard_normal(shape)


def test_mi_of_correlated_pair_matches_closed_form():
    rho, n = 0.8, 20000
    x, e = _normal(0, n), _normal(1, n)
    y = rho * x + np.sqrt(1 - rho**2) * e
    assert gaussian_mi(x, y) == pytest.approx(-0.5 * np.log2(1 - rho**2), abs=0.02)


def test_multivariate_mi_matches_closed_form():
    # X ~ N(0, I_3), Y = X W + E with E ~ N(0, I_2): I(X; Y) = 1/2 log2 det(W^T W + I)
    n = 20000
    W = np.array([[1.0, 0.2], [0.5, -1.0], [0.0, 0.7]])
    x = _normal(2, n, 3)
    y = x @ W + _normal(3, n, 2)
    expected = 0.5 * np.log2(np.linalg.det(W.T @ W + np.eye(2)))
    assert gaussian_mi(x, y) == pytest.approx(expected, abs=0.03)


def test_bias_correction_removes_the_small_sample_bias():
    # independent 5-d X and Y from 100 samples: the plain estimate is biased up by about 0.18 bits
    plain = [gaussian_mi(_normal(s, 100, 5), _normal(1000 + s, 100, 5), bias_correct=False) for s in range(40)]
    fixed = [gaussian_mi(_normal(s, 100, 5), _normal(1000 + s, 100, 5)) for s in range(40)]
    assert np.mean(plain) > 0.1
    assert abs(np.mean(fixed)) < 0.03


def test_pure_synergy():
    # B is the noise A carries: alone it says nothing about S, together they recover S
    n = 5000
    s, noise, e = _normal(4, n), _normal(5, n), _normal(6, n)
    r = pid(s + noise + 0.1 * e, noise, s)
    assert r["mi_b"] == pytest.approx(0, abs=0.02)
    assert r["redundancy"] == pytest.approx(0, abs=0.02) and r["unique_b"] == pytest.approx(0, abs=0.02)
    assert r["unique_a"] == pytest.approx(0.5, abs=0.05)  # I(S; S + N) = 1/2 log2 2
    assert r["synergy"] == pytest.approx(0.5 * np.log2(1 + 100) - 0.5, abs=0.1)


def test_pure_redundancy():
    # B is a copy of A (up to a hair of noise): everything either says, the other says too
    n = 5000
    s = _normal(7, n)
    a = s + _normal(8, n)
    r = pid(a, a + 0.01 * _normal(9, n), s)
    assert r["redundancy"] == pytest.approx(0.5, abs=0.05)
    for atom in ("unique_a", "unique_b", "synergy"):
        assert r[atom] == pytest.approx(0, abs=0.02), atom


def test_pure_unique():
    n = 5000
    s = _normal(10, n)
    r = pid(s + _normal(11, n), _normal(12, n), s)
    assert r["unique_a"] == pytest.approx(0.5, abs=0.05)
    for atom in ("redundancy", "unique_b", "synergy"):
        assert r[atom] == pytest.approx(0, abs=0.02), atom


def test_atoms_sum_to_the_joint_information():
    x = _normal(13, 500, 6)
    r = pid(x[:, :2], x[:, 2:4], x[:, :1] + x[:, 2:3] + x[:, 4:])
    assert r["redundancy"] + r["unique_a"] + r["unique_b"] + r["synergy"] == pytest.approx(r["joint"])
    assert r["redundancy"] + r["unique_a"] == pytest.approx(r["mi_a"])


def test_reduce_dims_keeps_the_largest_components():
    x = _normal(14, 300, 5) * np.array([10.0, 1.0, 5.0, 0.1, 0.1])
    z = reduce_dims(x, 2)
    assert z.shape == (300, 2)
    assert z.var(0)[0] > z.var(0)[1] > 10  # columns 0 and 2 of x
    assert reduce_dims(x, 8).shape == (300, 5)


def test_bad_input_is_refused_with_a_reason():
    with pytest.raises(ValueError, match="same samples"):
        gaussian_mi(_normal(0, 10), _normal(1, 11))
    with pytest.raises(ValueError, match="NaN"):
        gaussian_mi(np.array([1.0, np.nan, 2.0, 3.0]), _normal(1, 4))
    with pytest.raises(ValueError, match="cannot estimate"):
        gaussian_mi(_normal(0, 5, 4), _normal(1, 5, 2))
    with pytest.raises(ValueError, match="singular"):
        x = _normal(2, 50)
        gaussian_mi(np.c_[x, x], _normal(3, 50))


def test_pid_matrix_finds_the_synergistic_pair():
    from otnsd.analysis import pid_matrix, rank_pairs

    n = 3000
    s, noise = _normal(20, n), _normal(21, n)
    sources = {"A": np.c_[s + noise + 0.1 * _normal(25, n), _normal(22, n)], "B": np.c_[noise, _normal(23, n)], "C": _normal(24, n, 2)}
    P = pid_matrix(sources, s, ["A", "B", "C"], k=2)
    assert rank_pairs(P["synergy"], ["A", "B", "C"])[0][1:] == ("A", "B")
    assert np.allclose(P["synergy"], P["synergy"].T, equal_nan=True) and np.isnan(np.diag(P["synergy"])).all()
    assert P["unique"][0, 2] == pytest.approx(P["mi"][0], abs=0.02)  # A beside C: all of A's information is its own
    assert P["unique"][2, 0] == pytest.approx(0, abs=0.02)
    with pytest.raises(ValueError, match="no source for regions"):
        pid_matrix(sources, s, ["A", "D"])


def test_one_hot_targets_and_constant_sources():
    from otnsd.analysis import pid_matrix

    n = 2000
    labels = np.random.default_rng(30).integers(0, 4, n)
    one_hot = np.eye(4)[labels]  # columns sum to 1: a singular covariance
    assert reduce_dims(one_hot).shape == (n, 3)
    sources = {"A": labels[:, None] + _normal(31, n, 1), "B": _normal(32, n, 3)}
    P = pid_matrix(sources, one_hot, ["A", "B"], k=3)
    assert P["mi"][0] > 0.3 and abs(P["mi"][1]) < 0.02
    with pytest.raises(ValueError, match="constant"):
        reduce_dims(np.ones((10, 3)))


def test_mmi_reads_a_weaker_source_as_synergy_and_two_unique_sources_as_redundant():
    """The known limits of the minimum-mutual-information redundancy, pinned so the README's
    reading of it stays true: synergy is I(A,B;T) - max(I(A;T), I(B;T)) (the weaker source never
    has unique information), so two noisy copies of one signal show synergy; and with a 2-d target
    whose halves two sources carry apart, MMI reports redundancy where there is none."""
    n = 20000
    s = _normal(40, n)
    copies = pid(s + _normal(41, n), s + _normal(42, n), s)
    assert copies["synergy"] == pytest.approx(copies["joint"] - max(copies["mi_a"], copies["mi_b"]))
    assert copies["synergy"] > 0.2 and min(copies["unique_a"], copies["unique_b"]) == 0
    s1, s2 = _normal(43, n), _normal(44, n)
    apart = pid(s1 + _normal(45, n), s2 + _normal(46, n), np.c_[s1, s2])
    assert apart["redundancy"] > 0.4  # about 0.5 bits, though A and B share nothing
