"""Correctness of the JAX likelihood: gradients, normalisation, and an independent NumPy version."""

import numpy as np
import pytest
from astropy.coordinates import SkyCoord
from scipy.special import xlogy

from skyfit.likelihood import Likelihood
from skyfit.models import (
    BackgroundNorm,
    DiskSpatialModel,
    ExpCutoffPowerLaw,
    GaussianSpatialModel,
    LogParabola,
    Models,
    PointSpatialModel,
    PowerLaw,
    Source,
)
from skyfit.simulate import lhaaso_dataset, simulate_dataset

RA, DEC = 83.63, 22.01


@pytest.fixture(scope="module")
def km2a():
    return lhaaso_dataset("KM2A", (RA, DEC), 2.5, nside=128, livetime_days=365)


@pytest.fixture(scope="module")
def wcda():
    return lhaaso_dataset("WCDA", (RA, DEC), 2.5, nside=128, livetime_days=30)


def _all_kinds_model(n_bins_km2a):
    return Models(
        [
            Source("pt", PointSpatialModel.create(RA + 0.05, DEC - 0.03), LogParabola.create(2e-13, 2.7, 0.1, 7.0)),
            Source("gs", GaussianSpatialModel.create(RA - 0.6, DEC + 0.4, 0.3), PowerLaw.create(5e-14, 2.4, 10.0)),
            Source(
                "dk",
                DiskSpatialModel.create(RA + 0.7, DEC + 0.5, 0.4),
                ExpCutoffPowerLaw.create(4e-14, 2.2, 1 / 80.0, 1.0, 10.0),
            ),
        ],
        [BackgroundNorm.create("KM2A", n_bins_km2a, mode="per_bin"), BackgroundNorm.create("WCDA", 6, mode="global")],
    )


def test_gradient_matches_finite_differences_for_every_parameter_kind(km2a, wcda):
    model = _all_kinds_model(km2a.n_bins)
    truth = simulate_dataset(model, km2a, seed=3), simulate_dataset(model, wcda, seed=4)
    lk = Likelihood(model, list(truth))
    # evaluate away from the truth so that every derivative is sizeable
    shifted = {
        k: v * 1.02 + (0.01 if "lon" in k or "lat" in k else 0.0)
        for k, v in model.values().items()
        if not model.parameters()[k].frozen
    }
    x = np.asarray(lk.vector(shifted))
    value, grad = lk.value_and_grad(x)
    # Fit hands MIGRAD the value alone where it wants no gradient: both must be the same function
    assert lk.stat(x) == pytest.approx(float(value), rel=1e-13, abs=0)
    grad = np.asarray(grad)
    checked = 0
    for i, key in enumerate(lk.keys):
        if model.parameters()[key].frozen:
            continue
        h = 1e-4 * model.parameters()[key].autoscale

        def d(step, i=i):
            xp, xm = x.copy(), x.copy()
            xp[i] += step
            xm[i] -= step
            return (lk.stat(xp) - lk.stat(xm)) / (2 * step)

        numeric = (4 * d(h / 2) - d(h)) / 3  # Richardson extrapolation of central differences
        assert grad[i] == pytest.approx(numeric, rel=1e-6, abs=1e-6 * abs(grad).max() * 0 + 1e-9), key
        checked += 1
    kinds = {k.split(".")[1] for k in lk.keys if not model.parameters()[k].frozen}
    assert {"lon_0", "lat_0", "sigma", "r_0", "amplitude", "index", "alpha", "beta", "lambda_", "norm"} <= kinds
    assert checked >= 20


@pytest.mark.parametrize(
    "spatial",
    [
        PointSpatialModel.create(RA, DEC),
        GaussianSpatialModel.create(RA, DEC, 0.3),
        DiskSpatialModel.create(RA, DEC, 0.5),
    ],
    ids=["point", "gauss", "disk"],
)
def test_npred_sums_to_the_analytic_total(spatial):
    # nside 1024 (0.057 deg pixels) samples even the narrowest PSF core (~0.1 deg)
    ds = lhaaso_dataset("WCDA", (RA, DEC), 8.0, nside=1024, livetime_days=10)
    spectrum = LogParabola.create(2.3e-13, 2.7, 0.06, 7.0)
    model = Models([Source("s", spatial, spectrum)])
    # background norm 0 leaves the source alone
    model = Models(model.sources, [BackgroundNorm.create(ds.name, ds.n_bins, mode="global")])
    lk = Likelihood(model, [ds])
    npred = lk.npred(lk.vector({f"{ds.name}-bkg.norm": 0.0}))[0]
    expected = ds.response.counts_matrix_at(DEC) @ np.asarray(spectrum.evaluate(ds.response.energy_true_tev))
    np.testing.assert_allclose(npred.sum(axis=1), expected, rtol=5e-3)


def _numpy_stat(model, dataset, values):
    """Independent implementation: astropy separations, small loops, scipy's xlogy."""
    r = dataset.response
    ra, dec = dataset.roi.radec()
    pix = SkyCoord(ra, dec, unit="deg")
    npred = np.where(dataset.mask, dataset.background.data, 0.0).copy()
    for s in model.sources:
        p = {q.name: values[f"{s.name}.{q.name}"] for q in s.parameters}
        e = r.energy_true_tev
        if s.spectral.tag == "LogParabolaSpectralModel":
            dnde = p["amplitude"] * (e / p["reference"]) ** (-p["alpha"] - p["beta"] * np.log(e / p["reference"]))
        else:
            dnde = p["amplitude"] * (e / p["reference"]) ** (-p["index"])
        per_bin = np.array(
            [np.interp(p["lat_0"], r.dec_nodes_deg, r.counts_matrix[:, b] @ dnde) for b in range(r.n_bins)]
        )
        theta = pix.separation(SkyCoord(p["lon_0"], p["lat_0"], unit="deg")).rad
        omc = 2 * np.sin(theta / 2) ** 2
        ext = np.radians(p.get("sigma", 0.0))
        for b in range(r.n_bins):
            kern = np.zeros_like(theta)
            for w, sig in zip(r.psf.weights[b], np.radians(r.psf.sigma_deg[b]), strict=False):
                kappa = 1 / (sig**2 + ext**2)
                kern += w * kappa / (2 * np.pi * (1 - np.exp(-2 * kappa))) * np.exp(-kappa * omc)
            npred[b] += per_bin[b] * kern * dataset.roi.pixel_area_sr
    n = dataset.counts.data
    m = dataset.mask
    return 2 * np.sum(np.where(m, npred - n + xlogy(n, n) - xlogy(n, npred), 0.0))


def test_likelihood_matches_independent_numpy(km2a):
    model = Models(
        [
            Source("a", PointSpatialModel.create(RA, DEC), LogParabola.create(2.3e-13, 2.7, 0.06, 7.0)),
            Source("b", GaussianSpatialModel.create(RA + 0.8, DEC - 0.5, 0.25), PowerLaw.create(3e-14, 2.5, 10.0)),
        ]
    )
    ds = simulate_dataset(model, km2a, seed=11)
    lk = Likelihood(model, [ds])
    for shift in (0.0, 0.03):
        values = {k: v * (1 + shift) if not model.parameters()[k].frozen else v for k, v in model.values().items()}
        ours = lk.stat(lk.vector(values))
        ref = _numpy_stat(model, ds, values)
        assert ours == pytest.approx(ref, rel=1e-10)


def test_with_counts_reuses_structure(km2a):
    model = Models([Source("a", PointSpatialModel.create(RA, DEC), PowerLaw.create(3e-14, 2.5, 10.0))])
    a = simulate_dataset(model, km2a, seed=1)
    b = simulate_dataset(model, km2a, seed=2)
    lk_a = Likelihood(model, [a])
    assert lk_a.with_counts([b.counts.data]).stat() == pytest.approx(Likelihood(model, [b]).stat(), rel=1e-12)
    assert lk_a.with_counts([b.counts.data]).stat() != pytest.approx(lk_a.stat(), rel=1e-6)


def test_hessian_options_agree_with_the_exact_jax_hessian(km2a):
    """The default HESSE input (central differences of the JAX gradient) and Minuit's own finite
    differences both reproduce the errors from JAX's exact reverse-over-reverse Hessian."""
    from skyfit.fit import Fit

    model = Models(
        [
            Source("a", PointSpatialModel.create(RA, DEC), LogParabola.create(9e-16, 2.8, 0.06, 50.0)),
            Source("b", GaussianSpatialModel.create(RA + 0.8, DEC - 0.5, 0.25), PowerLaw.create(3e-14, 2.5, 10.0)),
        ]
    )
    lk = Likelihood(model, [simulate_dataset(model, km2a, seed=5)])
    exact = Fit(lk, hessian="exact").run()
    assert exact.valid, exact.messages
    h = lk.hessian(lk.vector({k: exact.value(k) for k in exact.free_keys}))
    assert np.allclose(h, h.T, rtol=1e-10, atol=0)
    for option, rel in (("fd", 1e-4), ("minuit", 0.05)):
        other = Fit(lk, hessian=option).run()
        assert other.valid, (option, other.messages)
        for k in exact.free_keys:
            assert other.errors[k] == pytest.approx(exact.errors[k], rel=rel), (option, k)
    with pytest.raises(ValueError, match="hessian must be"):
        Fit(lk, hessian="numeric")


def test_a_small_fit_compiles_one_function_and_values_agree_across_the_switch(km2a):
    """A likelihood's first value-only evaluations come from its value-and-gradient function, with the
    gradient; later ones from the value-only function. A fit of few calls (most fits of one source) never
    compiles the second; the value is the same from both."""
    from skyfit.fit import Fit
    from skyfit.likelihood import VALUE_ONLY_AFTER

    model = Models([Source("a", PointSpatialModel.create(RA, DEC), PowerLaw.create(2e-15, 2.8, 50.0))])
    # a (zero) user term: functions of this likelihood alone, not shared with other tests' likelihoods
    lk = Likelihood(model, [simulate_dataset(model, km2a, seed=8)], terms=(lambda p: 0.0 * p["a"]["index"],))
    res = Fit(lk).run()
    assert res.valid, res.messages
    assert res.nfcn < VALUE_ONLY_AFTER and lk._fns.stat._cache_size() == 0
    x = lk.vector({k: res.value(k) for k in res.free_keys})
    lk = Likelihood(model, lk.datasets)  # no call made yet
    early = [lk.value_maybe_grad(x) for _ in range(VALUE_ONLY_AFTER)]
    late = lk.value_maybe_grad(x)
    value, grad = lk.value_and_grad(x)
    assert all(g is not None for _, g in early) and late[1] is None
    assert early[-1][0] == pytest.approx(float(value), rel=1e-13) and late[0] == pytest.approx(float(value), rel=1e-13)
    assert np.array_equal(early[-1][1], np.asarray(grad))
    assert lk.stat(x) == late[0]


def test_a_saddle_is_reported_not_a_crash(km2a):
    """Between two equal sources a one-source model's position is a saddle: the likelihood falls along
    the line joining them. Handed that Hessian (not positive definite), iminuit 2.33 raised "'NoneType'
    object is not callable" (it broke the catalogue on a 94-parameter ROI); now HESSE there reports that
    the point is not a minimum, and MIGRAD from it goes on to one of the sources."""
    from skyfit.fit import Fit

    def point(name, ra, amplitude=2e-14):
        return Source(name, PointSpatialModel.create(ra, DEC), PowerLaw.create(amplitude, 2.6, 10.0))

    pair = Models([point("a", RA - 1.0), point("b", RA + 1.0)])
    ds = simulate_dataset(pair, km2a, seed=11)
    one = Models([point("m", RA, 1e-14)]).with_frozen(["m.index"])
    lk = Likelihood(one, [ds])
    for option in ("fd", "exact"):
        at_saddle = Fit(lk, hessian=option).run(one, migrad=False)
        assert not at_saddle.valid
        assert any("not positive definite" in m for m in at_saddle.messages), at_saddle.messages
        best = Fit(lk, hessian=option).run(one)
        assert best.valid, (option, best.messages)
        assert min(abs(best.value("m.lon_0") - (RA + d)) for d in (-1.0, 1.0)) < 0.1


def test_statistic_is_a_sum_of_terms_over_a_parameter_pytree(km2a, wcda):
    """The statistic composes: one Cash term per dataset, the Gaussian priors, and a user's own term of
    the parameter pytree, whose gradient reaches the fit exactly."""
    import jax.numpy as jnp

    from skyfit.likelihood import CashTerm

    model = _all_kinds_model(km2a.n_bins)
    data = [simulate_dataset(model, km2a, seed=5), simulate_dataset(model, wcda, seed=6)]
    plain = Likelihood(model, data)
    x = plain.vector()
    tree = plain.params(x)
    assert tree["gs"]["sigma"] == model.values()["gs.sigma"]
    assert list(tree[model.backgrounds[1].name]) == ["norm"]  # WCDA's global background norm
    np.testing.assert_array_equal(np.asarray(plain.vector_of(tree)), np.asarray(x))
    # the datasets' terms add up to the whole
    # (the terms run op by op, the statistic jitted: float64 rounding of differently fused sums, ~1e-11)
    per_dataset = [float(CashTerm(i)(plain, tree, x, plain.arrays)) for i in range(2)]
    assert plain.stat(x) == pytest.approx(sum(per_dataset), rel=5e-11)
    single = Likelihood(model.for_datasets([km2a.name]), data[:1])
    assert single.stat() == pytest.approx(per_dataset[0], rel=5e-11)

    def index_pull(params):  # a -2 ln p tying the two indices (a user's own term)
        return ((params["gs"]["index"] - params["dk"]["index"]) / 0.1) ** 2

    priors = {"gs.sigma": (0.25, 0.05)}
    both = Likelihood(model, data, priors=priors, terms=(index_pull,))
    expected_prior = ((0.3 - 0.25) / 0.05) ** 2 + ((2.4 - 2.2) / 0.1) ** 2
    assert both.prior_stat() == pytest.approx(expected_prior, rel=1e-12)
    assert both.stat() == pytest.approx(plain.stat() + expected_prior, rel=1e-12)
    # the gradient of the added term is exact: central differences on the index of "gs"
    i = both.keys.index("gs.index")
    _, grad = both.value_and_grad(x)
    h = 1e-4  # the statistic (~1e3, a deviance with a large constant) carries ~3e-8 of float64 rounding
    up, down = np.array(x), np.array(x)
    up[i] += h
    down[i] -= h
    assert float(grad[i]) == pytest.approx((both.stat(up) - both.stat(down)) / (2 * h), rel=1e-5)
    assert float(index_pull(both.params(jnp.asarray(x)))) == pytest.approx(4.0, rel=1e-12)
