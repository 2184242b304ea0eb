"""Fixed-shape likelihood programs (skyfit._shapes): bucketed sizes, padded slots that predict nothing,
and one compiled program shared by models that differ in how many components they have, where they
sit and which parameters are free."""

import numpy as np
import pytest
from conftest import SMALL_CENTER, make_small_dataset

from skyfit._shapes import bucket, width_class
from skyfit.likelihood import Likelihood
from skyfit.models import GaussianSpatialModel, Models, PointSpatialModel, PowerLaw, Source

RA, DEC = SMALL_CENTER


def _points(n, shift=0.0):
    return [Source(f"p{j}", PointSpatialModel.create(RA - 0.8 + 0.35 * j + shift, DEC + 0.2 * (-1) ** j),
                   PowerLaw.create(3e-13 * (1 + j), 2.4 + 0.05 * j, 1.0)) for j in range(n)]  # fmt: skip


def test_buckets_pad_by_at_most_a_half():
    assert [bucket(n) for n in range(1, 14)] == [1, 2, 3, 4, 6, 6, 8, 8, 12, 12, 12, 12, 16]
    n = np.arange(1, 3000)
    b = np.array([bucket(k) for k in n])
    assert np.all(b >= n) and np.all(b <= 1.5 * n)
    w = np.array([width_class(k) for k in n])
    assert np.all(w >= n) and np.all(w <= n * 17 / 16 + 1) and len(set(w[n >= 2048])) <= 16


def test_padded_slots_predict_nothing():
    """Five point sources fill six slots: their predicted counts are the sum of each one's alone."""
    ds = make_small_dataset()
    sources = _points(5)
    joint = Likelihood(Models(sources), [ds]).npred()[0]
    alone = [Likelihood(Models([s]), [ds]).npred()[0] for s in sources]
    bkg = ds.background_filled()
    np.testing.assert_allclose(joint, sum(alone) - 4 * bkg, rtol=1e-12)


def test_models_of_one_kind_share_compiled_functions_and_gradients_stay_exact():
    """Five and six point sources, elsewhere and with other parameters frozen, use one compiled value and
    gradient (nothing compiled for the second); the gradient matches central differences; a model with
    another kind of source (a Gaussian) has its own functions."""
    ds = make_small_dataset()
    a = Likelihood(Models(_points(5)).with_frozen(["p1.index"]), [ds])
    b = Likelihood(Models(_points(6, shift=0.1)).with_frozen(["p0.lon_0", "p0.lat_0"]), [ds])
    assert a._fns is b._fns
    a.value_and_grad(a.vector())
    compiled = a._fns.value_and_grad._cache_size()
    x = np.asarray(b.vector())
    value, grad = b.value_and_grad(x)
    assert b._fns.value_and_grad._cache_size() == compiled
    assert grad.shape == x.shape and float(value) == pytest.approx(b.stat(x), rel=1e-13)
    for key, step in (("p5.lon_0", 1e-5), ("p2.index", 1e-5), ("p3.amplitude", 1e-17)):
        i = b.keys.index(key)
        up, down = x.copy(), x.copy()
        up[i] += step
        down[i] -= step
        assert float(grad[i]) == pytest.approx((b.stat(up) - b.stat(down)) / (2 * step), rel=1e-4), key
    gaussian = Source("g", GaussianSpatialModel.create(RA, DEC, 0.3), PowerLaw.create(1e-13, 2.5, 1.0))
    other = Models([*_points(5), gaussian])
    assert Likelihood(other, [ds])._fns is not a._fns
