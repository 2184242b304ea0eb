"""HAL responses (see :mod:`skyfit.io.hal`): the tables of a ROOT or HDF5 response file, and its PSFs."""

from __future__ import annotations

import functools
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np

from ._hal_common import HALFormatError, _detect_format, _open_hdf5, _open_root, _root_first, _root_get
from ._hal_pandas import _column, _read_pandas_frame, _unique_in_order
from ._hal_tf1 import _TF1, _hal_builtin_psf, _hal_builtin_spectrum, _TF1Unsupported

# HAL samples each PSF fit at these radii (deg) and normalises it on [xs[0], 15 deg]
_PSF_OUTER_RADIUS_DEG = 15.0
_PSF_XS = np.logspace(-3, np.log10(_PSF_OUTER_RADIUS_DEG), 500)
# fine radius grid (deg) on which the PSF is tabulated and the Gaussian mixture is fitted
_PSF_FINE_RAD = np.linspace(_PSF_XS[0], _PSF_OUTER_RADIUS_DEG, 7501)
_N_PSF_COMPONENTS = 3


@dataclass
class _ResponseTables:
    """Everything HAL keeps of a response, per band (sorted by centre) and analysis bin."""

    path: str
    fmt: str
    bin_names: tuple
    dec_center: np.ndarray  # (n_dec,)
    dec_min: np.ndarray
    dec_max: np.ndarray
    e_low: np.ndarray  # (n_true,) TeV
    e_center: np.ndarray
    e_high: np.ndarray
    sim_flux: np.ndarray  # (n_dec, n_bins, n_true) simulated dN/dE at e_center, TeV^-1 cm^-2 s^-1
    signal: np.ndarray  # (n_dec, n_bins, n_true) simulated signal events per transit
    n_sig: np.ndarray  # (n_dec, n_bins)
    n_bkg: np.ndarray
    psf_xs: list  # [d][b] radii (deg) or None for an unusable PSF fit
    psf_ys: list  # [d][b] dN/dr
    psf_source: str
    sim_spectrum: dict = field(default_factory=dict)
    # filled by _psf_products
    r68: np.ndarray | None = None
    mixtures: dict = field(default_factory=dict)  # (band, bin) -> fitted mixture, filled on demand
    density: np.ndarray | None = None  # (n_dec, n_bins, n_rad) deg^-2, on _PSF_FINE_RAD


def _ensig_layout(f, path: Path, d: int, name: str):
    dirs = [f"dec_{d:02d}/nh_{name.zfill(2)}", f"dec_{d:02d}/nh_{name}"]
    keys = lambda stem: [f"{dd}/{stem}" for dd in dict.fromkeys(dirs)]  # noqa: E731
    sig = _root_first(f, path, keys(f"EnSig_dec{d}_nh{name}"), f"signal histogram of band {d}, bin {name!r}")
    bkg = _root_first(f, path, keys(f"EnBg_dec{d}_nh{name}"), f"background histogram of band {d}, bin {name!r}")
    fit = _root_first(f, path, keys(f"PSF_dec{d}_nh{name}_fit"), f"PSF fit of band {d}, bin {name!r}")

    def hist():  # read only when the PSF fit cannot be evaluated
        for key in keys(f"PSF_dec{d}_nh{name}"):
            try:
                h = f[key]
            except Exception:  # noqa: S112
                continue
            return np.asarray(h.axis().edges(), float), h.values()
        return None

    return sig, bkg, fit, hist


def _root_response_axes(f, path: Path) -> tuple:
    """(simulated spectrum TF1, band centres, lower and upper edges, bin names) of an open ROOT response."""
    for key in ("LogLogSpectrum", "DecBins", "AnalysisBins"):
        if key not in f:
            hint = " (is it a maptree? read it with read_maptree)" if "BinInfo" in f else ""
            raise HALFormatError(
                f"{path}: no {key!r} in this ROOT file{hint}; a HAL response holds LogLogSpectrum, "
                "DecBins and AnalysisBins: pass the response file produced for hawc_hal"
            )
    spectrum = _TF1.from_uproot(_root_get(f, path, "LogLogSpectrum", "simulated spectrum"))
    decs = _root_get(f, path, "DecBins", "declination bands")
    try:
        center = np.asarray(decs["simdec"].array(library="np"), float)
        lower = np.asarray(decs["lowerEdge"].array(library="np"), float)
        upper = np.asarray(decs["upperEdge"].array(library="np"), float)
    except Exception as exc:
        raise HALFormatError(
            f"{path}: DecBins lacks a simdec/lowerEdge/upperEdge branch ({exc}); the response is incomplete"
        ) from exc
    bins_tree = _root_get(f, path, "AnalysisBins", "analysis bins")
    if "name" in bins_tree.keys():
        names = [str(v) for v in bins_tree["name"].array(library="np")]
    elif "id" in bins_tree.keys():
        names = [str(int(v)) for v in bins_tree["id"].array(library="np")]
    else:
        raise HALFormatError(
            f"{path}: AnalysisBins has neither a 'name' nor an 'id' branch; the response is incomplete"
        )
    return spectrum, center, lower, upper, names


def _root_response_bins(f, path: Path, n_dec: int, names) -> tuple:
    """(log10 energy edges, signal, background sums, PSF radii, PSF values, PSF sources) per band and bin."""
    n_bins = len(names)
    edges = None
    signal = bkg_sum = None
    psf_xs, psf_ys, sources = [], [], set()
    for d in range(n_dec):
        psf_xs.append([])
        psf_ys.append([])
        for b, name in enumerate(names):
            sig_h, bkg_h, fit, hist = _ensig_layout(f, path, d, name)
            e = np.asarray(sig_h.axis().edges(), float)
            if edges is None:
                edges = e
                signal = np.zeros((n_dec, n_bins, len(e) - 1))
                bkg_sum = np.zeros((n_dec, n_bins))
            elif not np.array_equal(e, edges):
                raise HALFormatError(
                    f"{path}: EnSig_dec{d}_nh{name} has other energy bins than EnSig_dec0 of the first bin; "
                    "skyfit needs one true-energy binning for the whole response"
                )
            signal[d, b] = sig_h.values()
            bkg_sum[d, b] = float(np.sum(bkg_h.values()))
            xs, ys, source = _psf_samples(_TF1.from_uproot(fit), hist)
            sources.add(source)
            psf_xs[-1].append(xs)
            psf_ys[-1].append(ys)
    return edges, signal, bkg_sum, psf_xs, psf_ys, sources


def _sim_log_flux(spectrum: _TF1, log_center: np.ndarray, path: Path) -> tuple:
    """(log10 of the simulated spectrum at ``log_centre``, how it was evaluated)."""
    try:
        log_flux = spectrum.evaluate(log_center)
        how = "the TF1's stored ROOT 5 formula"
    except _TF1Unsupported:
        try:
            log_flux = _hal_builtin_spectrum(spectrum, log_center)
            how = f"hawc_hal's built-in {spectrum.title!r} shape (the TF1 formula is not stored)"
        except _TF1Unsupported as exc:
            raise HALFormatError(f"{path}: cannot evaluate LogLogSpectrum ({exc}); the response is not usable") from exc
    return log_flux, how


def _read_response_root(path: Path) -> _ResponseTables:
    f = _open_root(path)
    try:
        spectrum, center, lower, upper, names = _root_response_axes(f, path)
        edges, signal, bkg_sum, psf_xs, psf_ys, sources = _root_response_bins(f, path, len(center), names)
    except HALFormatError:
        raise
    except Exception as exc:
        raise HALFormatError(f"{path}: cannot read the response ({exc!r}); the file is corrupt: copy it again") from exc
    finally:
        f.close()

    log_center = 0.5 * (edges[:-1] + edges[1:])
    log_flux, how = _sim_log_flux(spectrum, log_center, path)
    sim_flux = 10.0**log_flux
    if not np.all(np.isfinite(sim_flux)) or np.any(sim_flux <= 0):
        raise HALFormatError(f"{path}: LogLogSpectrum is not positive and finite on the simulated energies")

    order = np.argsort(center, kind="stable")
    tables = _ResponseTables(
        path=str(path),
        fmt="root",
        bin_names=tuple(names),
        dec_center=center[order],
        dec_min=lower[order],
        dec_max=upper[order],
        e_low=10.0 ** edges[:-1],
        e_center=10.0**log_center,
        e_high=10.0 ** edges[1:],
        sim_flux=np.broadcast_to(sim_flux, signal.shape).copy(),
        signal=signal[order],
        n_sig=signal.sum(axis=2)[order],
        n_bkg=bkg_sum[order],
        psf_xs=[psf_xs[i] for i in order],
        psf_ys=[psf_ys[i] for i in order],
        psf_source=", ".join(sorted(sources)),
        sim_spectrum={
            "name": spectrum.name,
            "formula": spectrum.formula or spectrum.title,
            "params": spectrum.params.tolist(),
            "param_names": list(spectrum.param_names),
            "evaluated_with": how,
            "convention": "log10(dN/dE / (TeV^-1 cm^-2 s^-1)) as a function of x = log10(E / TeV)",
        },
    )
    return tables


def _psf_samples(fit: _TF1, hist) -> tuple:  # hist: callable returning (edges, values) or None
    """(xs, ys, source): the PSF's dN/dr sampled as HAL does, or (None, None, source) if unusable."""
    try:
        ys = fit.evaluate(_PSF_XS)
        source = "TF1 formula"
    except _TF1Unsupported:
        if len(fit.params) == 4:  # what hawc_hal assumes for every PSF fit when read with uproot
            ys = _hal_builtin_psf(fit.params, _PSF_XS)
            source = "hawc_hal double-Gaussian with the TF1 parameters"
        elif (table := hist()) is not None:
            edges, values = table
            centers = 0.5 * (edges[1:] + edges[:-1])
            dndr = values / np.diff(edges)
            return np.append(centers, _PSF_OUTER_RADIUS_DEG), np.append(dndr, 0.0), "PSF histogram"
        else:
            return None, None, "none"
    grid = np.linspace(0.0, _PSF_OUTER_RADIUS_DEG, 3001)
    try:
        integral = np.trapezoid(
            fit.evaluate(grid) if source == "TF1 formula" else _hal_builtin_psf(fit.params, grid), grid
        )
    except _TF1Unsupported:
        integral = np.nan
    if not (np.all(np.isfinite(ys)) and np.isfinite(integral) and integral > 0):
        return None, None, source  # HAL's InvalidPSF: a fit with no positive integral
    return _PSF_XS.copy(), ys, source


def _read_response_hdf5(path: Path) -> _ResponseTables:
    with _open_hdf5(path) as h5:
        missing = [k for k in ("/dec_bins_definition", "/effective_area", "/psf") if k not in h5]
        if missing:
            hint = " (is it a maptree? read it with read_maptree)" if "/analysis_bins" in h5 else ""
            raise HALFormatError(
                f"{path}: no {missing[0]!r} in this HDF5 file{hint}; a HAL response holds /dec_bins_definition, "
                "/effective_area and /psf: pass the response written by hawc_hal or hal_response_root_to_hdf5"
            )
        meta = _read_pandas_frame(path, h5, "/dec_bins_definition")
        eff = _read_pandas_frame(path, h5, "/effective_area")
        psf = _read_pandas_frame(path, h5, "/psf")
    key = "/dec_bins_definition"
    if len(meta["index"]) != 2 or len(eff["index"]) != 3 or len(psf["index"]) != 3:
        raise HALFormatError(f"{path}: the response data frames do not have HAL's (declination, bin[, row]) index")
    m_dec, m_name = meta["index"][0].astype(float), meta["index"][1].astype(str)
    decs = sorted({float(v) for v in m_dec})
    names = _unique_in_order(m_name)
    n_dec, n_bins = len(decs), len(names)
    dec_min, dec_max = np.zeros(n_dec), np.zeros(n_dec)
    n_sig, n_bkg = np.zeros((n_dec, n_bins)), np.zeros((n_dec, n_bins))
    mcols = {c: _column(path, meta, key, c) for c in ("min_dec", "max_dec", "n_sim_signal_events", "n_sim_bkg_events")}
    for i, (dv, nv) in enumerate(zip(m_dec, m_name, strict=True)):
        d, b = decs.index(float(dv)), names.index(nv)
        dec_min[d], dec_max[d] = mcols["min_dec"][i], mcols["max_dec"][i]
        n_sig[d, b], n_bkg[d, b] = mcols["n_sim_signal_events"][i], mcols["n_sim_bkg_events"][i]
    e_dec, e_name = eff["index"][0].astype(float), eff["index"][1].astype(str)
    cols = {
        c: _column(path, eff, "/effective_area", c)
        for c in (
            "sim_energy_bin_low",
            "sim_energy_bin_centers",
            "sim_energy_bin_hi",
            "sim_differential_photon_fluxes",
            "sim_signal_events_per_bin",
        )
    }
    first = (e_dec == decs[0]) & (e_name == names[0])
    e_center = cols["sim_energy_bin_centers"][first]
    n_true = len(e_center)
    signal = np.zeros((n_dec, n_bins, n_true))
    sim_flux = np.zeros((n_dec, n_bins, n_true))
    for d, dv in enumerate(decs):
        for b, nv in enumerate(names):
            rows = (e_dec == dv) & (e_name == nv)
            if rows.sum() != n_true or not np.array_equal(cols["sim_energy_bin_centers"][rows], e_center):
                raise HALFormatError(
                    f"{path}: /effective_area of band {dv} deg, bin {nv!r} has other true-energy bins than the "
                    "first; skyfit needs one true-energy binning for the whole response"
                )
            signal[d, b] = cols["sim_signal_events_per_bin"][rows]
            sim_flux[d, b] = cols["sim_differential_photon_fluxes"][rows]
    p_dec, p_name = psf["index"][0].astype(float), psf["index"][1].astype(str)
    xs_all, ys_all = _column(path, psf, "/psf", "xs"), _column(path, psf, "/psf", "ys")
    psf_xs = [[None] * n_bins for _ in range(n_dec)]
    psf_ys = [[None] * n_bins for _ in range(n_dec)]
    for d, dv in enumerate(decs):
        for b, nv in enumerate(names):
            rows = (p_dec == dv) & (p_name == nv)
            if rows.any():
                psf_xs[d][b], psf_ys[d][b] = xs_all[rows], ys_all[rows]
    return _ResponseTables(
        path=str(path),
        fmt="hdf5",
        bin_names=tuple(names),
        dec_center=np.array(decs),
        dec_min=dec_min,
        dec_max=dec_max,
        e_low=cols["sim_energy_bin_low"][first],
        e_center=e_center,
        e_high=cols["sim_energy_bin_hi"][first],
        sim_flux=sim_flux,
        signal=signal,
        n_sig=n_sig,
        n_bkg=n_bkg,
        psf_xs=psf_xs,
        psf_ys=psf_ys,
        psf_source="HDF5 /psf table (the PSF fit sampled by hawc_hal)",
        sim_spectrum={"convention": "sim_differential_photon_fluxes (TeV^-1 cm^-2 s^-1) at sim_energy_bin_centers"},
    )


def _psf_products(tables: _ResponseTables) -> None:
    """Per band and bin: 68 % radius (as HAL computes it) and the PSF density on the fine grid."""
    from scipy.interpolate import InterpolatedUnivariateSpline
    from scipy.optimize import brentq

    n_dec, n_bins = tables.signal.shape[:2]
    r = _PSF_FINE_RAD
    r68 = np.full((n_dec, n_bins), np.nan)
    density = np.zeros((n_dec, n_bins, len(r)))
    for d in range(n_dec):
        for b in range(n_bins):
            xs, ys = tables.psf_xs[d][b], tables.psf_ys[d][b]
            if xs is None or len(xs) < 4:
                continue
            spline = InterpolatedUnivariateSpline(xs, ys, k=2, ext="zeros")
            outer = min(_PSF_OUTER_RADIUS_DEG, float(xs[-1]))
            anti = spline.antiderivative()
            total = anti(outer) - anti(xs[0])
            if not (np.isfinite(total) and total > 0):
                tables.psf_xs[d][b] = tables.psf_ys[d][b] = None
                continue
            r68[d, b] = brentq(lambda x: (anti(x) - anti(xs[0])) / total - 0.68, xs[0], outer, xtol=1e-10)  # noqa: B023
            dndr = np.clip(np.where(r <= outer, spline(r), 0.0), 0.0, None)
            density[d, b] = dndr / (2 * np.pi * r) / total
    tables.r68, tables.density = r68, density
    for arr in (r68, density):
        arr.setflags(write=False)


def _band_mixture(tables: _ResponseTables, d: int, b: int) -> tuple:
    """(weights, sigma_deg, max containment error) of the Gaussian mixture fitted to one PSF (cached).

    The PSF is a 2-Gaussian fit in HAL, so the 3-component fit can leave a component of negligible
    weight with a width far beyond the 15 deg the PSF is defined on; such a component is given the
    width of the widest other one (which changes the containment by less than its weight). The
    error returned is the largest difference between the mixture's containment and HAL's PSF
    containment over the whole 1e-3..15 deg grid.
    """
    from ..response.hawc import fit_gaussian_mixture_psf

    key = (d, b)
    if key not in tables.mixtures:
        r, dens = _PSF_FINE_RAD, tables.density[d, b]
        w, s, _ = fit_gaussian_mixture_psf(r, dens, n_components=_N_PSF_COMPONENTS)
        s = np.array(s, dtype=float)
        inside = s <= _PSF_OUTER_RADIUS_DEG
        if inside.any() and not inside.all():
            s[~inside] = s[inside].max()
        integrand = 2 * np.pi * r * dens
        target = np.concatenate([[0.0], np.cumsum(0.5 * (integrand[1:] + integrand[:-1]) * np.diff(r))])
        model = np.sum(w * -np.expm1(-0.5 * (r[:, None] / s) ** 2), axis=1) - np.sum(
            w * -np.expm1(-0.5 * (r[0] / s) ** 2)
        )
        tables.mixtures[key] = (np.asarray(w, float), s, float(np.max(np.abs(model - target))))
    return tables.mixtures[key]


@functools.lru_cache(maxsize=4)
def _load_response(path_str: str, mtime_ns: int, size: int) -> _ResponseTables:
    path = Path(path_str)
    fmt = _detect_format(path)
    tables = _read_response_root(path) if fmt == "root" else _read_response_hdf5(path)
    _psf_products(tables)
    for name in ("dec_center", "dec_min", "dec_max", "e_low", "e_center", "e_high", "sim_flux", "signal"):
        getattr(tables, name).setflags(write=False)
    return tables


def _response_tables(path) -> _ResponseTables:
    path = Path(path).expanduser()
    _detect_format(path)
    st = path.stat()
    return _load_response(str(path.resolve()), st.st_mtime_ns, st.st_size)
