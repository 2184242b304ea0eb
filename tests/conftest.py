"""Shared fixtures: the public reference data (skipped when absent) and a small synthetic dataset."""

from __future__ import annotations

import importlib.util
from pathlib import Path

import numpy as np
import pytest

from skyfit._data import DataNotFoundError, data_dir
from skyfit.dataset import Dataset
from skyfit.maps import HealpixMaps, HealpixROI
from skyfit.response import GaussianMixturePSF, Response, log_simpson_nodes

SMALL_CENTER = (83.6, 22.0)
SMALL_RADIUS_DEG = 2.0
SMALL_NSIDE = 128
SMALL_BIN_NAMES = ("low", "high")
SMALL_BACKGROUND_PER_PIXEL = (5.0, 2.0)  # flat expected background counts per pixel, per bin
SMALL_SEED = 20240611


def hawc_data_path():
    """The HAWC pass-4 Crab release folder, or ``pytest.skip`` with how to get it."""
    try:
        return data_dir("hawc", "crab_events_pass4")
    except DataNotFoundError as exc:
        pytest.skip(
            f"HAWC public data not found: set SKYFIT_DATA to a folder holding "
            f"hawc/crab_events_pass4 (or place it in ../shared/data). {exc}"
        )


@pytest.fixture(scope="session")
def hawc_data():
    """Path of ``hawc/crab_events_pass4`` in the reference data; tests using it must be marked ``data``."""
    return hawc_data_path()


def small_response(n_bins: int = 2) -> Response:
    """A 2-bin response at one declination node (22 deg) with a smooth exposure and dispersion.

    The exposure rises from ~7e13 cm^2 s at 0.5 TeV to ~6e14 cm^2 s above 5 TeV; bin "low" takes the
    events below ~2 TeV, bin "high" those above. A power law of 1e-12 cm^-2 s^-1 TeV^-1 at 1 TeV and
    index 2.6 gives ~230 ("low") and ~120 ("high") counts.
    """
    nodes, weights = log_simpson_nodes(np.geomspace(0.5, 200.0, 25))
    exposure = 6e14 * -np.expm1(-((nodes / 2.0) ** 1.5))  # cm^2 s
    high = 1.0 / (1.0 + (2.0 / nodes) ** 3)  # fraction of events reconstructed in the high bin
    dispersion = np.stack([1.0 - high, high])[:n_bins]
    counts_matrix = (exposure * weights * dispersion)[None]  # (n_dec=1, n_bins, n_nodes), cm^2 s TeV
    psf = GaussianMixturePSF(
        np.array([[0.7, 0.3], [0.8, 0.2]])[:n_bins], np.array([[0.30, 0.80], [0.15, 0.40]])[:n_bins]
    )
    return Response(
        bin_names=SMALL_BIN_NAMES[:n_bins],
        energy_true_tev=nodes,
        dec_nodes_deg=np.array([22.0]),
        counts_matrix=counts_matrix,
        psf=psf,
        meta={"instrument": "synthetic"},
    )


def make_small_dataset(seed: int = SMALL_SEED, name: str = "small", nest: bool = True) -> Dataset:
    """A synthetic dataset on a 2 deg disc at nside 128 around the Crab: flat background, Poisson counts."""
    roi = HealpixROI.from_disc(SMALL_CENTER, SMALL_RADIUS_DEG, nside=SMALL_NSIDE, nest=nest)
    response = small_response()
    bkg = np.repeat(np.asarray(SMALL_BACKGROUND_PER_PIXEL)[:, None], roi.n_pix, axis=1)
    counts = np.random.default_rng(seed).poisson(bkg).astype(float)
    names = response.bin_names
    return Dataset(
        name,
        HealpixMaps(counts, roi, names),
        HealpixMaps(bkg, roi, names),
        response,
        meta={"synthetic": True, "seed": seed},
    )


@pytest.fixture
def small_dataset() -> Dataset:
    """A 2-bin synthetic :class:`Dataset` (nside 128, 2 deg disc at (83.6, 22.0)), counts ~ Poisson(bkg)."""
    return make_small_dataset()


@pytest.fixture(scope="session")
def catalogs_dir():
    """``catalogs/`` of the reference data (1LHAASO, 2HWC, 3HWC), or skip with how to get it."""
    try:
        return data_dir("catalogs")
    except DataNotFoundError as exc:
        pytest.skip(
            "public catalogues (1LHAASO, 2HWC, 3HWC) not found: set SKYFIT_DATA to a folder holding catalogs/ "
            f"(or place it in ../shared/data); they are public but not shipped because of their licence. {exc}"
        )


@pytest.fixture(scope="session")
def hal_response():
    """Path of ``hawc_hal/geminga_response.root`` (a real HAWC detector response in 3ML's HAL format), or skip."""
    try:
        return data_dir("hawc_hal", "geminga_response.root")
    except DataNotFoundError as exc:
        pytest.skip(
            "HAWC HAL response not found: set SKYFIT_DATA to a folder holding hawc_hal/geminga_response.root "
            f"(hawc_hal's test data, BSD-3; or place it in ../shared/data). {exc}"
        )


@pytest.fixture(scope="session")
def fermi_gc():
    """``fermi-3fhl-gc/`` of the reference data (Fermi-LAT Galactic centre above 10 GeV: events, exposure,
    PSF and background cubes, the diffuse model; gammapy's data, CC BY-NC-SA 4.0), or skip."""
    try:
        return data_dir("fermi-3fhl-gc")
    except DataNotFoundError as exc:
        pytest.skip(
            "Fermi-LAT 3FHL Galactic-centre files not found: set SKYFIT_DATA to a folder holding fermi-3fhl-gc/ "
            f"(gammapy-data's fermi-3fhl-gc, or place it in ../shared/data). {exc}"
        )


def load_benchmark(name: str):
    """The module ``benchmarks/<name>.py`` (the benchmarks are scripts, not a package), for tests of its parts."""
    path = Path(__file__).resolve().parents[1] / "benchmarks" / f"{name}.py"
    spec = importlib.util.spec_from_file_location(name, path)
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module
