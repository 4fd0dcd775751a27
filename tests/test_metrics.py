"""Metrics against closed forms, independent slow computations and known orderings."""

import math

import numpy as np
import pytest
import torch

from genforge.errors import GenforgeError
from genforge.metrics import (
    FID, KID, ClassHistogram, ClassifierScore, ConditionalAccuracy, DensityCoverage, PrecisionRecall,
    ReconstructionError, feature_stats, frechet_distance, ssim,
)
from genforge.metrics._knn import balls_containing, knn_radii
from genforge.metrics.kid import polynomial_kernel


@pytest.fixture(autouse=True, scope="module")
def one_thread():
    # These are small matrices: a second thread only adds hand-off cost (a lot of it on a
    # busy machine).
    before = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(before)


def gen(seed):
    return torch.Generator().manual_seed(seed)


def random_spd(d, seed):
    a = np.random.default_rng(seed).normal(size=(d, d))
    return a @ a.T / d + 0.1 * np.eye(d)


def fid_of(real, fake):
    m = FID()
    m.update(real, real=True)
    m.update(fake, real=False)
    return m.compute()


# --- FID ---------------------------------------------------------------------------


def test_fid_of_a_set_against_itself_is_zero():
    x = torch.randn(500, 16, generator=gen(0)) * 3 + 1
    scale = float(np.trace(feature_stats(x)[1]))
    assert abs(fid_of(x, x)) < 1e-6 * scale


def test_frechet_distance_matches_closed_form_for_diagonal_covariances():
    rng = np.random.default_rng(1)
    mu1, mu2 = rng.normal(size=6), rng.normal(size=6)
    s1, s2 = rng.uniform(0.1, 3, size=6), rng.uniform(0.1, 3, size=6)
    expected = np.sum((mu1 - mu2) ** 2) + np.sum((np.sqrt(s1) - np.sqrt(s2)) ** 2)
    assert frechet_distance(mu1, np.diag(s1), mu2, np.diag(s2)) == pytest.approx(expected, rel=1e-6)


def test_frechet_distance_matches_eigen_formula_for_full_covariances():
    d = 8
    a, b = random_spd(d, 2), random_spd(d, 3)
    mu1, mu2 = np.arange(d, dtype=float), np.ones(d)
    # tr sqrt(A B) = sum of sqrt(eigenvalues of A^1/2 B A^1/2), a symmetric PSD matrix.
    w, v = np.linalg.eigh(a)
    a_half = v @ np.diag(np.sqrt(w)) @ v.T
    tr_covmean = np.sum(np.sqrt(np.clip(np.linalg.eigvalsh(a_half @ b @ a_half), 0, None)))
    expected = np.sum((mu1 - mu2) ** 2) + np.trace(a) + np.trace(b) - 2 * tr_covmean
    assert frechet_distance(mu1, a, mu2, b) == pytest.approx(expected, rel=1e-6)


def test_fid_of_samples_approaches_the_closed_form():
    rng = np.random.default_rng(4)
    d = 4
    mu1, mu2 = np.zeros(d), np.full(d, 0.5)
    s1, s2 = random_spd(d, 5), random_spd(d, 6)
    x = rng.multivariate_normal(mu1, s1, size=20000)
    y = rng.multivariate_normal(mu2, s2, size=20000)
    expected = frechet_distance(mu1, s1, mu2, s2)
    assert fid_of(torch.from_numpy(x), torch.from_numpy(y)) == pytest.approx(expected, rel=0.05)


def test_fid_streaming_equals_one_batch_and_stats_match_numpy():
    x = torch.randn(300, 8, generator=gen(7)) + 1000  # a large offset: the sums must not cancel
    y = torch.randn(250, 8, generator=gen(8)) * 2 + 1000
    whole = fid_of(x, y)
    m = FID()
    for part in x.split([1, 50, 249]):
        m.update(part, real=True)
    for part in y.split(64):
        m.update(part, real=False)
    assert m.compute() == pytest.approx(whole, rel=1e-9)
    mu, sigma = m.real_stats()
    xd = x.double().numpy()
    np.testing.assert_allclose(mu, xd.mean(0), rtol=1e-12)
    np.testing.assert_allclose(sigma, np.cov(xd, rowvar=False), rtol=1e-8, atol=1e-10)


def test_fid_grows_with_shift_and_with_noise():
    x = torch.randn(1000, 8, generator=gen(9))
    y = torch.randn(1000, 8, generator=gen(10))
    shifts = [fid_of(x, y + s) for s in (0.0, 0.25, 0.5, 1.0, 2.0)]
    noises = [fid_of(x, y + s * torch.randn(1000, 8, generator=gen(11))) for s in (0.0, 0.5, 1.0, 2.0)]
    assert shifts == sorted(shifts) and len(set(shifts)) == len(shifts)
    assert noises == sorted(noises) and len(set(noises)) == len(noises)
    assert shifts[-1] == pytest.approx(8 * 4, rel=0.1)  # ||mean shift||^2 dominates


def test_set_real_stats_gives_the_same_fid_as_real_features():
    x = torch.randn(400, 8, generator=gen(12))
    y = torch.randn(400, 8, generator=gen(13)) + 0.3
    cached = FID()
    cached.set_real_stats(*feature_stats(x))
    cached.update(y, real=False)
    assert cached.compute() == pytest.approx(fid_of(x, y), rel=1e-9)
    # reset(keep_real=True) keeps the cached statistics for the next model.
    cached.reset(keep_real=True)
    cached.update(x, real=False)
    assert abs(cached.compute()) < 1e-8
    with pytest.raises(GenforgeError, match="set_real_stats"):
        cached.update(x, real=True)


def test_fid_with_fewer_samples_than_dimensions_is_finite():
    x = torch.randn(10, 32, generator=gen(14))  # singular covariances: the eps ridge path
    value = fid_of(x, x)
    assert math.isfinite(value) and abs(value) < 1e-3


def test_fid_errors_are_clear():
    m = FID()
    m.update(torch.randn(1, 4), real=True)
    m.update(torch.randn(5, 4), real=False)
    with pytest.raises(GenforgeError, match="at least 2"):
        m.compute()
    with pytest.raises(GenforgeError, match="dimensions"):
        m.update(torch.randn(5, 3), real=False)
    with pytest.raises(GenforgeError, match=r"\(N, D\)"):
        m.update(torch.randn(5), real=False)
    with pytest.raises(GenforgeError, match="do not match"):
        frechet_distance(np.zeros(3), np.eye(3), np.zeros(4), np.eye(4))


# --- KID ---------------------------------------------------------------------------


def kid_of(real, fake, **kwargs):
    m = KID(**kwargs)
    m.update(real, real=True)
    m.update(fake, real=False)
    return m.compute()


def test_kid_of_one_distribution_is_near_zero_and_of_shifted_ones_is_not():
    x = torch.randn(1000, 16, generator=gen(20))
    y = torch.randn(1000, 16, generator=gen(21))
    same = kid_of(x, y, subsets=20, subset_size=200)
    shifted = kid_of(x, y + 0.3, subsets=20, subset_size=200)
    assert abs(same["kid"]) < 3 * same["kid_std"]
    assert abs(same["kid"]) < 0.02 * shifted["kid"]
    assert shifted["kid"] > 5 * shifted["kid_std"]


def test_kid_is_unbiased_over_repetitions():
    m, d = 20, 8
    estimates, spreads, biased = [], [], []
    for rep in range(20):
        g = gen(100 + rep)
        x, y = torch.randn(200, d, generator=g), torch.randn(200, d, generator=g)
        r = kid_of(x, y, subsets=10, subset_size=m, seed=rep)
        estimates.append(r["kid"])
        spreads.append(r["kid_std"])
        # The plug-in (V-statistic) estimator keeps the diagonal: biased upwards.
        xx, yy = x[:m].double(), y[:m].double()
        k = lambda a, b: polynomial_kernel(a, b, 3, 1 / d, 1)  # noqa: E731
        biased.append(float(k(xx, xx).mean() + k(yy, yy).mean() - 2 * k(xx, yy).mean()))
    estimates = np.array(estimates)
    tolerance = 3 * estimates.std() / math.sqrt(len(estimates))
    assert abs(estimates.mean()) < tolerance
    assert tolerance < 0.5 * np.mean(spreads)  # much tighter than one estimate's spread
    assert np.mean(biased) > 10 * tolerance  # so this test would catch the biased form


def test_kid_uses_all_samples_when_fewer_than_subset_size_and_is_repeatable():
    x = torch.randn(50, 4, generator=gen(22))
    y = torch.randn(30, 4, generator=gen(23))
    m = KID(subsets=5, subset_size=1000)
    m.update(x, real=True)
    m.update(y[:10], real=False)
    m.update(y[10:], real=False)
    first = m.compute()
    assert m.subset_size_used == 30
    assert m.compute() == first


def test_kid_with_fewer_than_two_samples_raises():
    with pytest.raises(GenforgeError, match="at least 2"):
        kid_of(torch.randn(1, 4), torch.randn(10, 4))
    with pytest.raises(GenforgeError, match="at least 2"):
        kid_of(torch.randn(10, 4), torch.empty(0, 4))


# --- precision / recall, density / coverage ------------------------------------------


def two_sided(metric, real, fake):
    metric.update(real, real=True)
    metric.update(fake, real=False)
    return metric.compute()


def test_knn_helpers_match_brute_force_for_any_chunk():
    x = torch.randn(57, 3, generator=gen(30))
    q = torch.randn(41, 3, generator=gen(31))
    full = torch.cdist(x.double(), x.double())
    expected_radii = full.sort(1).values[:, 3]  # index 0 is the point itself
    for chunk in (1, 7, 1000):
        radii = knn_radii(x, 3, chunk=chunk)
        torch.testing.assert_close(radii.double(), expected_radii, rtol=1e-5, atol=1e-5)
        counts = balls_containing(q, x, radii, chunk=chunk)
        assert torch.equal(counts, (torch.cdist(q, x) <= radii).sum(1))


def test_precision_recall_of_one_distribution_is_high():
    x = torch.randn(2000, 4, generator=gen(32))
    assert two_sided(PrecisionRecall(), x, x) == {"precision": 1.0, "recall": 1.0}
    r = two_sided(PrecisionRecall(), x, torch.randn(2000, 4, generator=gen(33)))
    assert r["precision"] > 0.9 and r["recall"] > 0.9


def test_precision_recall_far_away_is_zero():
    x = torch.randn(500, 4, generator=gen(34))
    r = two_sided(PrecisionRecall(), x, torch.randn(500, 4, generator=gen(35)) + 50)
    assert r == {"precision": 0.0, "recall": 0.0}


def test_half_the_modes_gives_high_precision_and_half_recall():
    centres = torch.tensor([[-10.0, 0.0], [10.0, 0.0]])
    real = torch.randn(2000, 2, generator=gen(36)) + centres[torch.arange(2000) % 2]
    fake = torch.randn(1000, 2, generator=gen(37)) + centres[0]
    r = two_sided(PrecisionRecall(), real, fake)
    assert r["precision"] > 0.9
    assert 0.4 < r["recall"] < 0.55


def test_density_coverage_same_distribution_and_collapse():
    x = torch.randn(2000, 4, generator=gen(38))
    same = two_sided(DensityCoverage(), x, torch.randn(2000, 4, generator=gen(39)))
    assert 0.85 < same["density"] < 1.15 and same["coverage"] > 0.9
    collapsed = two_sided(DensityCoverage(), x, 0.01 * torch.randn(2000, 4, generator=gen(40)))
    assert collapsed["coverage"] < 0.05
    assert collapsed["density"] > 2  # every fake sits in the densest real balls


def test_knn_metrics_need_more_than_k_samples():
    with pytest.raises(GenforgeError, match="k=3"):
        two_sided(PrecisionRecall(k=3), torch.randn(3, 2), torch.randn(10, 2))
    with pytest.raises(GenforgeError, match="k=5"):
        two_sided(DensityCoverage(k=5), torch.randn(5, 2), torch.randn(10, 2))


# --- classifier outputs ----------------------------------------------------------------


def score_of(probs, splits=1):
    m = ClassifierScore(splits=splits)
    m.update(probs)
    return m.compute()


def test_classifier_score_extremes():
    even = torch.eye(10).repeat(7, 1)
    assert score_of(even)["classifier_score"] == pytest.approx(10, abs=1e-6)
    one_class = torch.zeros(50, 10)
    one_class[:, 3] = 1
    assert score_of(one_class)["classifier_score"] == pytest.approx(1, abs=1e-9)
    assert score_of(torch.full((50, 10), 0.1))["classifier_score"] == pytest.approx(1, abs=1e-9)


def test_classifier_score_splits_and_streaming():
    one_class = torch.zeros(20, 10)
    one_class[:, 0] = 1
    probs = torch.cat([one_class, torch.eye(10).repeat(2, 1)])  # score 1, then score 10
    r = score_of(probs, splits=2)
    assert r["classifier_score"] == pytest.approx(5.5) and r["classifier_score_std"] == pytest.approx(4.5)
    m = ClassifierScore()
    for part in probs.split(3):
        m.update(part)
    assert m.compute() == score_of(probs)
    with pytest.raises(GenforgeError, match="softmax"):
        score_of(torch.randn(5, 10))


def test_class_histogram_collapse_and_balance():
    collapsed = ClassHistogram(10)
    collapsed.update(torch.full((100,), 4))
    r = collapsed.compute()
    assert r["classes_covered"] == 1 and r["class_histogram"][4] == 1.0
    assert r["class_kl"] == pytest.approx(math.log(10), rel=1e-3)
    balanced = ClassHistogram(10)
    balanced.update(torch.eye(10).repeat(5, 1) * 0.9 + 0.01)  # probabilities: their argmax counts
    r = balanced.compute()
    assert r["classes_covered"] == 10 and abs(r["class_kl"]) < 1e-9
    assert r["class_histogram"] == pytest.approx([0.1] * 10)


def test_class_histogram_coverage_rule():
    # 10 classes, uniform: covered means >= 10% of the expected 10%, i.e. >= 1% of samples.
    labels = torch.cat([torch.zeros(190, dtype=torch.long), torch.tensor([1, 1, 2]), torch.arange(3, 10)])
    m = ClassHistogram(10)
    m.update(labels)  # 200 samples: class 1 has 1%, classes 2..9 have 0.5%
    assert m.compute()["classes_covered"] == 2
    # Against a real distribution that only has classes 0 and 1, the histogram 50/50 matches it.
    m = ClassHistogram(10, real_distribution=[1, 1] + [0] * 8)
    m.update(torch.tensor([0, 1] * 20))
    r = m.compute()
    assert r["classes_covered"] == 2 and abs(r["class_kl"]) < 1e-9
    with pytest.raises(GenforgeError, match=r"\[0, 10\)"):
        m.update(torch.tensor([10]))


def test_conditional_accuracy():
    m = ConditionalAccuracy(num_classes=3)
    probs = torch.tensor([[0.8, 0.1, 0.1], [0.1, 0.8, 0.1], [0.1, 0.1, 0.8], [0.6, 0.3, 0.1]])
    m.update(probs[:2], torch.tensor([0, 1]))
    m.update(probs[2:], torch.tensor([2, 2]))
    assert m.compute() == {"conditional_accuracy": 0.75}
    with pytest.raises(GenforgeError, match="requested"):
        m.update(probs, torch.tensor([0]))


# --- reconstruction --------------------------------------------------------------------


def recon_of(x, y):
    m = ReconstructionError()
    m.update(x, y)
    return m.compute()


def test_identical_images_are_perfect():
    x = torch.rand(4, 3, 16, 16, generator=gen(50))
    r = recon_of(x, x)
    assert r["mse"] == 0 and r["psnr"] == pytest.approx(100.0) and r["ssim"] == pytest.approx(1.0, abs=1e-12)


def test_psnr_of_a_known_error():
    x = torch.full((2, 1, 12, 12), 0.5)
    r = recon_of(x, x + 0.1)
    assert r["mse"] == pytest.approx(0.01, rel=1e-6) and r["psnr"] == pytest.approx(20.0, rel=1e-6)


def test_more_noise_lowers_ssim_and_psnr():
    x = torch.rand(4, 1, 28, 28, generator=gen(51))
    noise = torch.randn(4, 1, 28, 28, generator=gen(52))
    results = [recon_of(x, (x + s * noise).clamp(0, 1)) for s in (0.02, 0.05, 0.1, 0.2, 0.4)]
    for a, b in zip(results, results[1:]):
        assert b["mse"] > a["mse"] and b["psnr"] < a["psnr"] and b["ssim"] < a["ssim"]


def test_ssim_of_constant_images_matches_global_formula():
    c1 = 0.01**2
    for a, b in ((0.2, 0.7), (0.5, 0.5), (0.0, 1.0)):
        x, y = (torch.full((1, 1, 15, 15), v, dtype=torch.float64) for v in (a, b))
        expected = (2 * a * b + c1) / (a * a + b * b + c1)  # no variance: the contrast term is c2 / c2
        assert float(ssim(x, y)) == pytest.approx(expected, rel=1e-9)


def test_ssim_matches_a_slow_loop():
    x = torch.rand(1, 2, 13, 14, generator=gen(53))
    y = (x + 0.2 * torch.randn(1, 2, 13, 14, generator=gen(54))).clamp(0, 1)
    xs, ys = x[0].double().numpy(), y[0].double().numpy()
    w = np.array([[math.exp(-((i - 5) ** 2 + (j - 5) ** 2) / (2 * 1.5**2)) for j in range(11)] for i in range(11)])
    w /= w.sum()
    c1, c2 = 0.01**2, 0.03**2
    values = []
    for ch in range(2):
        for i in range(13 - 10):
            for j in range(14 - 10):
                px, py = xs[ch, i:i + 11, j:j + 11], ys[ch, i:i + 11, j:j + 11]
                mx, my = (w * px).sum(), (w * py).sum()
                vx, vy = (w * (px - mx) ** 2).sum(), (w * (py - my) ** 2).sum()
                cov = (w * (px - mx) * (py - my)).sum()
                values.append((2 * mx * my + c1) * (2 * cov + c2) / ((mx**2 + my**2 + c1) * (vx + vy + c2)))
    assert float(ssim(x, y)) == pytest.approx(np.mean(values), rel=1e-9)
    assert recon_of(x, y)["ssim"] == pytest.approx(np.mean(values), rel=1e-9)


def test_reconstruction_input_checks():
    with pytest.raises(GenforgeError, match=r"\[0, 1\]"):
        recon_of(torch.rand(1, 1, 16, 16) * 2 - 1, torch.rand(1, 1, 16, 16))
    with pytest.raises(GenforgeError, match="differ in shape"):
        recon_of(torch.rand(1, 1, 16, 16), torch.rand(1, 1, 16, 15))
    with pytest.raises(GenforgeError, match="11x11"):
        recon_of(torch.rand(1, 1, 8, 8), torch.rand(1, 1, 8, 8))


def test_training_distance_tells_new_samples_from_copies():
    from genforge.metrics.memorisation import TrainingDistance
    g = torch.Generator().manual_seed(0)
    train, heldout = torch.randn(3000, 8, generator=g), torch.randn(1000, 8, generator=g)

    def score(fake):
        metric = TrainingDistance()
        for features, kind in ((train, "train"), (heldout, "heldout"), (fake, "fake")):
            metric.update(features, kind)
        return metric.compute()

    new = score(torch.randn(1000, 8, generator=g))
    copied = score(train[:1000] + 0.01 * torch.randn(1000, 8, generator=g))
    assert 0.85 < new["nn_ratio"] < 1.15 and new["copies"] < 0.04, new
    assert copied["nn_ratio"] < 0.1 and copied["copies"] > 0.9, copied
    with pytest.raises(GenforgeError, match="none for fake"):
        metric = TrainingDistance()
        metric.update(train, "train")
        metric.update(heldout, "heldout")
        metric.compute()
