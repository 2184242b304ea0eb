"""Gammapy side of the HAWC pass-4 Crab benchmark.

Follows gammapy's HAWC tutorial (``examples/tutorials/data/hawc.py``) to
reduce the public HAWC Crab event release into one ``MapDataset`` per fHit
bin, then fits a log-parabola point source with ``gammapy.modeling.Fit``
(minuit backend), timing the fit and single likelihood evaluations.

Run as a script to print the NN results (fixed and free position) as JSON.
"""

import json
import os
import time
from pathlib import Path

import astropy.units as u
import numpy as np
from astropy.coordinates import SkyCoord
from gammapy.data import DataStore, HDUIndexTable, ObservationTable
from gammapy.data import utils as data_utils
from gammapy.datasets import Datasets, MapDataset
from gammapy.makers import MapDatasetMaker, SafeMaskMaker
from gammapy.maps import Map, MapAxis, WcsGeom
from gammapy.modeling import Fit
from gammapy.modeling.models import (
    LogParabolaSpectralModel,
    PointSpatialModel,
    SkyModel,
)

__all__ = ["data_dir_default", "make_gammapy_datasets", "fit_crab_gammapy"]

CRAB_RA, CRAB_DEC = 83.633, 22.0145
ENERGY_EDGES_TEV = [1.00, 1.78, 3.16, 5.62, 10.0, 17.8, 31.6, 56.2, 100, 177, 316]


def data_dir_default():
    """Return the HAWC Crab pass-4 data directory.

    Returns
    -------
    path : `~pathlib.Path`
        ``$SKYFIT_DATA/hawc/crab_events_pass4``; ``SKYFIT_DATA`` defaults to
        ``shared/data`` beside the repository.
    """
    root = os.environ.get("SKYFIT_DATA")
    root = Path(root) if root else Path(__file__).resolve().parents[2] / "shared" / "data"
    return root / "hawc" / "crab_events_pass4"


def make_gammapy_datasets(data_dir, estimator="NN", fhit_bins=(5, 6, 7, 8, 9)):
    """Reduce the HAWC Crab release into one `MapDataset` per fHit bin.

    Parameters
    ----------
    data_dir : str or `~pathlib.Path`
        Directory holding the index tables and ``irfs/``.
    estimator : {"NN", "GP"}
        Energy estimator.
    fhit_bins : tuple of int
        fHit bins to reduce (HDU index of the HDU index table).

    Returns
    -------
    datasets : `~gammapy.datasets.Datasets`
        Datasets named ``fHit{N}``, background and exposure scaled by the
        number of transits at the geometry centre.
    """
    data_dir = Path(data_dir)
    data_utils.CHECK_OVERLAPPING_TI = False  # the release has overlapping GTIs
    obs_table = ObservationTable.read(data_dir / f"obs-index-table-{estimator}-Crab.fits.gz")

    energy_axis = MapAxis.from_edges(ENERGY_EDGES_TEV * u.TeV, name="energy", interp="log")
    energy_axis_true = MapAxis.from_energy_bounds(1e-3, 1e4, nbin=140, unit="TeV", name="energy_true")
    geom = WcsGeom.create(
        skydir=SkyCoord(83.63, 22.01, unit="deg", frame="icrs"),
        width=6 * u.deg,
        binsz=0.05,
        axes=[energy_axis],
    )
    maker = MapDatasetMaker(selection=["counts", "background", "exposure", "edisp", "psf"])
    safe_mask_maker = SafeMaskMaker(methods=["aeff-max"], aeff_percent=10)
    transits = Map.read(data_dir / "irfs" / "TransitsMap_Crab.fits.gz")
    n_transits = float(transits.get_by_coord(geom.center_skydir)[0])

    datasets = Datasets()
    for fhit in fhit_bins:
        hdu_table = HDUIndexTable.read(data_dir / f"hdu-index-table-{estimator}-Crab.fits.gz", hdu=fhit)
        obs = DataStore(hdu_table=hdu_table, obs_table=obs_table).get_observations()[0]
        empty = MapDataset.create(geom, energy_axis_true=energy_axis_true, name=f"fHit{fhit}", reco_psf=True)
        dataset = maker.run(empty, obs)
        dataset.exposure.meta["livetime"] = "6 h"
        dataset = safe_mask_maker.run(dataset)
        dataset.background.data *= n_transits
        dataset.exposure.data *= n_transits
        datasets.append(dataset)
    return datasets


def _mean_eval_ms(datasets, parameter, rel_step, n=20):
    """Mean wall time (ms) of ``datasets.stat_sum()`` after changing ``parameter``."""
    value = parameter.value
    times = []
    for i in range(n):
        parameter.value = value * (1 + rel_step * (1 if i % 2 else -1))
        t0 = time.perf_counter()
        datasets.stat_sum()
        times.append(time.perf_counter() - t0)
    parameter.value = value
    return 1e3 * float(np.mean(times))


def fit_crab_gammapy(datasets, free_position):
    """Fit a log-parabola point source at the Crab.

    Parameters
    ----------
    datasets : `~gammapy.datasets.Datasets`
        Output of `make_gammapy_datasets`; its models are replaced.
    free_position : bool
        Fit the source position too (frozen otherwise).

    Returns
    -------
    result : dict
        ``fit_s`` (wall time of ``Fit.run``), ``n_eval`` (minuit ``nfcn``;
        gammapy reuses migrad's covariance, so no extra hesse calls),
        ``eval_ms`` (mean ``stat_sum`` after an amplitude change),
        ``eval_pos_ms`` (after a position change), best-fit values and
        errors, ``ts``, ``success``, ``message``.
    """
    spatial = PointSpatialModel(lon_0=CRAB_RA * u.deg, lat_0=CRAB_DEC * u.deg, frame="icrs")
    spatial.lon_0.frozen = spatial.lat_0.frozen = not free_position
    spectral = LogParabolaSpectralModel(
        amplitude=2.3e-13 * u.Unit("TeV-1 cm-2 s-1"),
        reference=7 * u.TeV,
        alpha=2.6,
        beta=0.1,
    )
    datasets.models = [SkyModel(spectral, spatial, name="crab")]

    fit = Fit()
    t0 = time.perf_counter()
    result = fit.run(datasets)
    fit_s = time.perf_counter() - t0

    stat = datasets.stat_sum()
    amplitude = spectral.amplitude
    best = amplitude.value
    amplitude.value = 0.0
    stat_null = datasets.stat_sum()
    amplitude.value = best

    eval_ms = _mean_eval_ms(datasets, amplitude, 1e-3)
    eval_pos_ms = _mean_eval_ms(datasets, spatial.lon_0, 1e-5)

    out = dict(
        fit_s=fit_s,
        n_eval=int(result.optimize_result.minuit.nfcn),
        eval_ms=eval_ms,
        eval_pos_ms=eval_pos_ms,
        ts=float(stat_null - stat),
        success=bool(result.success),
        message=str(result.optimize_result.message),
    )
    for key, par in [
        ("amplitude", amplitude),
        ("alpha", spectral.alpha),
        ("beta", spectral.beta),
        ("ra", spatial.lon_0),
        ("dec", spatial.lat_0),
    ]:
        out[key] = float(par.value)
        out[f"{key}_err"] = float(par.error)
    return out


if __name__ == "__main__":
    t0 = time.perf_counter()
    datasets = make_gammapy_datasets(data_dir_default(), estimator="NN")
    print(json.dumps({"make_s": time.perf_counter() - t0}))
    for free in (False, True):
        res = fit_crab_gammapy(datasets, free_position=free)
        print(json.dumps({"estimator": "NN", "free_position": free, **res}, indent=1))
