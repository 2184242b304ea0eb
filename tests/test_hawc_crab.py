"""The real HAWC pass-4 Crab data: skyfit's fit against gammapy's and HAWC's published spectra.

gammapy reference (gammapy 2.1, its HAWC tutorial recipe: fHit 5-9, 6°x6° WCS at 0.05°, aeff-max 10 %
safe mask, point source at the Crab, log-parabola at 7 TeV, position fixed), measured on this
machine with ``python benchmarks/_gammapy_peer.py`` (the benchmark re-measures it side by side).
Published: Abeysekara et al. 2019, ApJ 881 134 (HAWC Crab spectrum with the NN and GP estimators).
"""

import json
import warnings

import numpy as np
import pytest

from skyfit import (
    Dataset,
    Fit,
    Likelihood,
    LogParabola,
    Models,
    PointSpatialModel,
    Source,
    hawc_dataset,
    ts_of_source,
)
from skyfit.cli import main
from skyfit.dataset import BackgroundNaNWarning
from skyfit.hawc import CRAB_DEC_DEG, CRAB_RA_DEG

GAMMAPY = {
    "NN": {"amplitude": (2.3256e-13, 0.2059e-13), "alpha": (2.696, 0.121), "beta": (0.0830, 0.104)},
    "GP": {"amplitude": (2.0597e-13, 0.2154e-13), "alpha": (2.980, 0.150), "beta": (-0.0053, 0.116)},
}
PUBLISHED = {
    "NN": {"amplitude": 2.31e-13, "alpha": 2.73, "beta": 0.06},
    "GP": {"amplitude": 2.35e-13, "alpha": 2.79, "beta": 0.10},
}


def crab_fit(estimator, hawc_data):
    with warnings.catch_warnings():
        # the GP background maps have NaN planes; they are masked (tested in test_bad_input)
        warnings.simplefilter("ignore", BackgroundNaNWarning)
        ds = hawc_dataset(estimator, path=hawc_data)
    crab = Source(
        "crab", PointSpatialModel.create(CRAB_RA_DEG, CRAB_DEC_DEG), LogParabola.create(2.3e-13, 2.6, 0.1, 7.0)
    )
    model = Models([crab]).with_frozen(["crab.lon_0", "crab.lat_0"])
    result = Fit(Likelihood(model, [ds])).run()
    return ds, result


@pytest.mark.data
@pytest.mark.parametrize("estimator", ["NN", "GP"])
def test_crab_spectrum_matches_gammapy_and_hawc(estimator, hawc_data):
    ds, result = crab_fit(estimator, hawc_data)
    assert result.valid, result.messages
    for name in ("amplitude", "alpha", "beta"):
        value, error = result.value(f"crab.{name}"), result.errors[f"crab.{name}"]
        ref, ref_err = GAMMAPY[estimator][name]
        assert abs(value - ref) < ref_err, f"{name}: skyfit {value:.4g} vs gammapy {ref:.4g} ± {ref_err:.2g}"
        assert abs(error / ref_err - 1) < 0.25, f"{name}: error {error:.3g} vs gammapy's {ref_err:.3g}"
        published = PUBLISHED[estimator][name]
        assert abs(value - published) < 2 * error, f"{name}: skyfit {value:.4g} vs HAWC {published:.4g}"
    ts, _ = ts_of_source(result, [ds], "crab")
    assert ts > 300


@pytest.mark.data
def test_crab_position_free(hawc_data):
    ds, fixed = crab_fit("NN", hawc_data)
    result = Fit(Likelihood(fixed.model.with_frozen(["crab.lon_0", "crab.lat_0"], False), [ds])).run()
    assert result.valid
    # gammapy: (83.624 ± 0.010, 22.005 ± 0.009) deg; the Crab nebula is at (83.633, 22.014)
    assert abs(result.value("crab.lon_0") - 83.633) < 3 * result.errors["crab.lon_0"]
    assert abs(result.value("crab.lat_0") - 22.0145) < 3 * result.errors["crab.lat_0"]
    assert result.errors["crab.lon_0"] < 0.03


# the Crab events through files: `skyfit bin` (release folder, public IRFs) -> dataset file -> `skyfit fit`
CONFIG = """
datasets:
  - {{type: file, path: {path}}}
model:
  components:
    - name: crab
      spatial: {{type: PointSpatialModel, parameters: [{{name: lon_0, value: 83.633083, frozen: true}},
                {{name: lat_0, value: 22.0145, frozen: true}}]}}
      spectral: {{type: LogParabolaSpectralModel, parameters: [{{name: amplitude, value: 2.3e-13, min: 0}},
                 {{name: alpha, value: 2.6}}, {{name: beta, value: 0.1}},
                 {{name: reference, value: 7.0, frozen: true}}]}}
"""


@pytest.mark.data
def test_bin_to_file_to_fit_equals_the_in_memory_crab_fit(hawc_data, tmp_path):
    path = tmp_path / "counts.fits"
    args = ["bin", str(hawc_data), "--estimator", "NN", "--center", "83.633083", "22.0145", "--radius", "3",
            "--nside", "1024", "--outdir", str(tmp_path)]  # fmt: skip
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", BackgroundNaNWarning)
        assert main(args) == 0
    ds_memory, in_memory = crab_fit("NN", hawc_data)
    from_file = Dataset.read(path)
    # the file holds exactly the in-memory dataset (the fits below differ only by the YAML model's parameter
    # bounds, which move MIGRAD's stopping point by ~1e-4 sigma)
    assert from_file.bin_names == ds_memory.bin_names
    pairs = [
        (from_file.counts.data, ds_memory.counts.data),
        (from_file.background.data, ds_memory.background.data),
        (from_file.mask, ds_memory.mask),
        (from_file.response.counts_matrix, ds_memory.response.counts_matrix),
    ]
    for a, b in pairs:
        assert np.array_equal(a, b, equal_nan=a.dtype.kind == "f")
    cfg = tmp_path / "fit.yaml"
    cfg.write_text(CONFIG.format(path=path.name))
    assert main(["fit", str(cfg), "--outdir", str(tmp_path / "fit")]) == 0
    result = json.loads((tmp_path / "fit" / "fit_result.json").read_text())["parameters"]
    for name in ("amplitude", "alpha", "beta"):
        key = f"crab.{name}"
        assert abs(result[key]["value"] - in_memory.value(key)) < 0.1 * in_memory.errors[key]
