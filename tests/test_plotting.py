"""Plots of fit results: spectra with their band, residual maps written to disk."""

import matplotlib

matplotlib.use("Agg")

import matplotlib.pyplot as plt  # noqa: E402
import numpy as np  # noqa: E402

from skyfit import Fit, Likelihood, Models, PointSpatialModel, PowerLaw, Source  # noqa: E402
from skyfit.plotting import plot_residuals, plot_spectrum  # noqa: E402
from skyfit.simulate import simulate_dataset  # noqa: E402


def test_spectrum_band_and_residual_plot(small_dataset, tmp_path):
    truth = Models([Source("s", PointSpatialModel.create(83.6, 22.0), PowerLaw.create(1e-12, 2.6, 1.0))])
    ds = simulate_dataset(truth, small_dataset, seed=5)
    result = Fit(Likelihood(truth.with_frozen(["s.lon_0", "s.lat_0"]), [ds])).run()
    assert result.valid
    # the instances must expose their parameter names (a dataclass default once hid them)
    assert result.model.source("s").spectral.parameter_names == ("amplitude", "index", "reference")
    fig, ax = plt.subplots()
    plot_spectrum(result, "s", (1.0, 100.0), ax=ax)
    band = ax.collections[0].get_paths()[0].vertices[:, 1]
    line = ax.lines[0].get_ydata()
    assert np.ptp(band) > 0 and band.min() < line.min() and band.max() > line.max()
    plt.close(fig)
    npred = Likelihood(result.model, [ds]).npred()[0]
    _, significance = plot_residuals(ds, npred, tmp_path / "res.png")
    assert (tmp_path / "res.png").stat().st_size > 10_000
    assert np.all(np.isfinite(significance)) and abs(significance.mean()) < 1.0
