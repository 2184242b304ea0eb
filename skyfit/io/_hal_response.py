"""HAL responses (see :mod:`skyfit.io.hal`) as skyfit responses, in HAL's HDF5 layout, and as a table."""

from __future__ import annotations

import os
import warnings
from pathlib import Path

import numpy as np

from ._hal_common import HALFormatError, HALPSFFallbackWarning, _detect_format
from ._hal_pandas import _h5_root_attrs, _write_pandas_frame
from ._hal_response_tables import _PSF_FINE_RAD, _band_mixture, _response_tables, _ResponseTables


def _psf_band(t: _ResponseTables, path: Path, dec_deg: float | None) -> int:
    """The band whose PSF is used: nearest to ``dec_deg``, or the one with the most simulated signal."""
    if dec_deg is None:
        band = int(np.argmax(t.n_sig.sum(axis=1)))
    else:
        lo, hi = float(np.min(t.dec_min)), float(np.max(t.dec_max))
        if not (np.isfinite(dec_deg) and lo <= dec_deg <= hi):
            raise HALFormatError(
                f"{path}: declination {dec_deg} deg is outside the response's bands [{lo}, {hi}] deg; "
                "use a source/ROI inside them or a response simulated for that declination"
            )
        band = int(np.argmin(np.abs(t.dec_center - dec_deg)))
    return band


def _psf_bands_per_bin(t: _ResponseTables, path: Path, band: int, n_bins: int) -> np.ndarray:
    """Per bin, ``band``, or the nearest band with a usable PSF fit (with a :class:`HALPSFFallbackWarning`)."""
    psf_band = np.full(n_bins, band)
    for b in range(n_bins):
        if np.isfinite(t.r68[band, b]):
            continue
        usable = np.nonzero(np.isfinite(t.r68[:, b]))[0]
        if usable.size == 0:
            raise HALFormatError(
                f"{path}: analysis bin {t.bin_names[b]!r} has no usable PSF fit in any declination band; "
                "drop this bin (Response.select) or use another response file"
            )
        psf_band[b] = usable[np.argmin(np.abs(t.dec_center[usable] - t.dec_center[band]))]
        warnings.warn(
            f"{path}: the PSF fit of bin {t.bin_names[b]!r} is unusable in the band at {t.dec_center[band]} deg; "
            f"using the band at {t.dec_center[psf_band[b]]} deg for its PSF",
            HALPSFFallbackWarning,
            stacklevel=3,  # the caller of read_hal_response
        )
    return psf_band


def read_hal_response(path, dec_deg: float | None = None, n_transits: float = 1.0):
    """Read a HAL detector response (ROOT or HDF5) into a skyfit :class:`~skyfit.response.Response`.

    Parameters
    ----------
    path : str or Path
        HAL response file; ROOT or HDF5 is recognised from the file's content, not its suffix.
    dec_deg : float, optional
        Declination (deg) of the source/ROI: the PSF of the declination band nearest to it is used
        (skyfit's PSF has no declination dependence). Default: the band with the most simulated
        signal events (sources transiting near zenith). Must lie within the response's bands.
    n_transits : float
        Number of transits (days) of the data the response is used with; HAL's simulated events
        are per transit, so ``counts_matrix`` is proportional to it.

    Returns
    -------
    Response
        ``bin_names``: HAL's analysis-bin names; ``energy_true_tev``: logarithmic centres of the
        simulated true-energy bins; ``dec_nodes_deg``: band centres; ``counts_matrix[d, b, k] =
        n_transits * S_k / f_sim(E_k)`` (HAL's convention, see the module docstring); ``psf``: a
        3-component Gaussian mixture fitted (through its containment curve) to the PSF of the
        selected band, normalised like HAL on [0, 15 deg]; ``psf_table``: that PSF tabulated.
        ``meta`` holds ``instrument``, ``file``, ``format``, ``dec_bands`` (``center``, ``min``,
        ``max``), ``psf_dec_band`` (index and centre used), ``psf_r68_deg`` (n_dec, n_bins) from the
        PSF fits as HAL computes it (NaN where the fit is unusable), ``psf_fit_max_containment_error``
        (per bin, of the mixture fit), ``psf_source``, ``sim_spectrum``, ``n_sim_signal_events``,
        ``n_sim_bkg_events``, ``energy_true_edges_tev`` and ``n_transits``.

    Raises
    ------
    HALFormatError
        The file is not a HAL response (FITS, maptree, ...), is truncated, lacks a key, or
        ``dec_deg`` is outside its declination bands.

    Warns
    -----
    HALPSFFallbackWarning
        When the PSF fit of a bin is unusable in the selected band (HAL's ``InvalidPSF``, at the
        edges of the field of view); the nearest band with a usable fit is used for that bin.

    Notes
    -----
    The PSF comes from the stored fit ``PSF_dec<d>_nh<b>_fit``: its ROOT 5 TFormula (reverse Polish
    expression with parameters, stored in the file and read with uproot) is evaluated directly. If a
    file stores no such formula (ROOT 6 TF1s), hawc_hal's own double-Gaussian with the TF1's 4
    parameters is used, as hawc_hal does; failing that, the ``PSF_dec<d>_nh<b>`` histogram.
    ``meta["psf_source"]`` says which.
    """
    path = Path(path).expanduser()
    t = _response_tables(path)
    n_dec, n_bins = t.signal.shape[:2]
    band = _psf_band(t, path, dec_deg)
    if not (np.isfinite(n_transits) and n_transits > 0):
        raise ValueError(f"n_transits must be positive and finite, got {n_transits}")

    psf_band = _psf_bands_per_bin(t, path, band, n_bins)
    bins = np.arange(n_bins)
    from ..response import GaussianMixturePSF, Response, TabulatedPSF

    fits = [_band_mixture(t, int(psf_band[b]), b) for b in bins]
    psf = GaussianMixturePSF(np.array([f[0] for f in fits]), np.array([f[1] for f in fits]))
    table = TabulatedPSF(_PSF_FINE_RAD.copy(), t.density[psf_band, bins].copy())
    counts_matrix = n_transits * t.signal / t.sim_flux
    meta = {
        "instrument": "HAWC",
        "file": str(path),
        "format": t.fmt,
        "reader": "skyfit.io.hal.read_hal_response",
        "dec_bands": {"center": t.dec_center.copy(), "min": t.dec_min.copy(), "max": t.dec_max.copy()},
        "psf_dec_band": {"index": band, "center_deg": float(t.dec_center[band])},
        "psf_dec_band_per_bin_deg": t.dec_center[psf_band].copy(),
        "psf_r68_deg": t.r68.copy(),
        "psf_fit_max_containment_error": np.array([f[2] for f in fits]),
        "psf_source": t.psf_source,
        "sim_spectrum": dict(t.sim_spectrum),
        "n_sim_signal_events": t.n_sig.copy(),
        "n_sim_bkg_events": t.n_bkg.copy(),
        "energy_true_edges_tev": np.append(t.e_low, t.e_high[-1]),
        "n_transits": float(n_transits),
        "convention": "counts = n_transits * sum_k S_k f(E_k) / f_sim(E_k), E_k the log-centres (HAL's default)",
    }
    return Response(
        bin_names=t.bin_names,
        energy_true_tev=t.e_center.copy(),
        dec_nodes_deg=t.dec_center.copy(),
        counts_matrix=counts_matrix,
        psf=psf,
        psf_table=table,
        meta=meta,
    )


def hal_response_root_to_hdf5(root_path, h5_path, overwrite: bool = False) -> Path:
    """Convert a ROOT HAL response to HAL's HDF5 layout (what hawc_hal's ``HAWCResponse.write`` writes).

    Parameters
    ----------
    root_path : str or Path
        HAL response in ROOT form.
    h5_path : str or Path
        Output file (``.hd5`` or ``.hdf5`` so that hawc_hal recognises it).
    overwrite : bool
        Replace an existing ``h5_path``.

    Returns
    -------
    Path
        ``h5_path``.

    Notes
    -----
    Written with h5py in pandas' fixed ``HDFStore`` layout (gzip instead of HAL's blosc:zstd
    compression). PSF fits are sampled at HAL's 500 radii; unusable fits get no rows, as in HAL.
    """
    root_path, h5_path = Path(root_path).expanduser(), Path(h5_path).expanduser()
    if _detect_format(root_path) != "root":
        raise HALFormatError(f"{root_path}: not a ROOT file; hal_response_root_to_hdf5 converts ROOT responses")
    if h5_path.exists() and not overwrite:
        raise FileExistsError(f"{h5_path} exists: pass overwrite=True to replace it")
    t = _response_tables(root_path)
    n_dec, n_bins, n_true = t.signal.shape
    keys_dec = np.repeat(t.dec_center, n_bins)
    dec_level, name_level = t.dec_center, np.array(t.bin_names, dtype=object)
    dec_codes, name_codes = np.repeat(np.arange(n_dec), n_bins), np.tile(np.arange(n_bins), n_dec)
    meta_values = np.column_stack(
        [np.repeat(t.dec_min, n_bins), np.repeat(t.dec_max, n_bins), keys_dec, t.n_sig.ravel(), t.n_bkg.ravel()]
    )
    eff_values = np.concatenate(
        [
            np.column_stack([t.e_low, t.e_center, t.e_high, t.sim_flux[d, b], t.signal[d, b]])
            for d in range(n_dec)
            for b in range(n_bins)
        ]
    )
    psf_rows, psf_codes = [], ([], [], [])
    n_psf = 0
    for d in range(n_dec):
        for b in range(n_bins):
            xs, ys = t.psf_xs[d][b], t.psf_ys[d][b]
            if xs is None:
                continue
            psf_rows.append(np.column_stack([xs, ys]))
            psf_codes[0].append(np.full(len(xs), d))
            psf_codes[1].append(np.full(len(xs), b))
            psf_codes[2].append(np.arange(len(xs)))
            n_psf = max(n_psf, len(xs))
    tmp = h5_path.with_name(h5_path.name + ".tmp")
    import h5py

    with h5py.File(tmp, "w") as h5:
        _h5_root_attrs(h5)
        _write_pandas_frame(
            h5,
            "/dec_bins_definition",
            ["min_dec", "max_dec", "declination_center", "n_sim_signal_events", "n_sim_bkg_events"],
            [(dec_level, dec_codes), (name_level, name_codes)],
            meta_values,
        )
        _write_pandas_frame(
            h5,
            "/effective_area",
            [
                "sim_energy_bin_low",
                "sim_energy_bin_centers",
                "sim_energy_bin_hi",
                "sim_differential_photon_fluxes",
                "sim_signal_events_per_bin",
            ],
            [
                (dec_level, np.repeat(dec_codes, n_true)),
                (name_level, np.repeat(name_codes, n_true)),
                (np.arange(n_true), np.tile(np.arange(n_true), n_dec * n_bins)),
            ],
            eff_values,
        )
        _write_pandas_frame(
            h5,
            "/psf",
            ["xs", "ys"],
            [
                (dec_level, np.concatenate(psf_codes[0])),
                (name_level, np.concatenate(psf_codes[1])),
                (np.arange(n_psf), np.concatenate(psf_codes[2])),
            ],
            np.concatenate(psf_rows),
        )
    os.replace(tmp, h5_path)
    return h5_path


def hal_response_table(
    path, dec_deg: float = 22.0, n_transits: float = 1.0, amplitude: float = 1e-11, index: float = 2.6
) -> str:
    """Per analysis bin: expected counts for a power law and PSF 68 % radii, as a text table.

    Parameters
    ----------
    path : str or Path
        HAL response (ROOT or HDF5).
    dec_deg : float
        Source declination (deg); counts are interpolated between bands like HAL, the PSF is that
        of the nearest band.
    n_transits : float
        Transits of exposure.
    amplitude, index : float
        Power law ``dN/dE = amplitude * (E / 1 TeV)^-index`` in TeV^-1 cm^-2 s^-1.

    Returns
    -------
    str
        One line per bin: name, expected counts, r68 of the fitted mixture and of HAL's PSF fit (deg).
    """
    resp = read_hal_response(path, dec_deg=dec_deg, n_transits=n_transits)
    counts = resp.counts_matrix_at(dec_deg) @ (amplitude * resp.energy_true_tev**-index)
    band = resp.meta["psf_dec_band"]["index"]
    lines = [
        f"# {Path(path).name}: dec {dec_deg} deg (PSF band at {resp.meta['psf_dec_band']['center_deg']} deg), "
        f"{n_transits} transit(s), dN/dE = {amplitude:g} (E/TeV)^-{index} TeV^-1 cm^-2 s^-1",
        f"{'bin':>6} {'counts':>12} {'r68_mix_deg':>12} {'r68_fit_deg':>12}",
    ]
    for b, name in enumerate(resp.bin_names):
        r_mix = resp.psf.containment_radius(0.68, b)
        lines.append(f"{name:>6} {counts[b]:12.5g} {r_mix:12.4f} {resp.meta['psf_r68_deg'][band, b]:12.4f}")
    lines.append(f"{'total':>6} {counts.sum():12.5g}")
    return "\n".join(lines)
