"""Responses from GADF DL3 IRFs (skyfit.response.dl3) against synthetic IRF files of known content.

The files are written here with astropy alone (not gammapy's writers), in the GADF column layout
(numpy shapes per row: EFFAREA (zen, E), MATRIX (zen, migra, E), RPSF (rad, zen, E)), with every axis
of a different length so that a transposed reading fails. The expected values are computed
independently: closed-form transit times, brute-force integrals over hour angle and true energy on
fine grids, and analytic Gaussian/King containment.
"""

from __future__ import annotations

import numpy as np
import pytest
from astropy.io import fits
from astropy.table import Table
from scipy.integrate import simpson
from scipy.optimize import brentq
from scipy.special import ndtr

from skyfit.response.dl3 import SIDEREAL_DAY_S, DL3FileError, dl3_response, hour_angle_quadrature

LAT = 18.99  # HAWC's latitude (deg)
Z_MAX = 45.0
A0_M2 = 1.0e5
E_EDGES = np.geomspace(0.1, 1000.0, 81)  # 20 bins per decade
Z_EDGES = np.arange(0.0, Z_MAX + 0.5, 1.0)  # 45 one-degree bins
MIGRA_EDGES = np.round(np.arange(0.3, 2.0 + 1e-9, 0.01), 10)
RAD_EDGES = np.arange(0.0, 4.0 + 1e-9, 0.01)
PSF_Z_EDGES = np.array([0.0, 15.0, 30.0, 45.0])  # the PSF HDU has its own, coarser zenith axis
PSF_E_EDGES = np.geomspace(0.1, 1000.0, 61)  # and its own energy axis (15 per decade)
SIGMA_MIGRA = 0.12
BANDS = np.array([1.0, 3.0, 10.0, 30.0, 100.0])


def _centers(edges, log=False):
    return np.sqrt(edges[1:] * edges[:-1]) if log else 0.5 * (edges[1:] + edges[:-1])


def _area_m2(energy, zenith, shape):
    """Effective area (m^2) of the synthetic instruments, zero beyond Z_MAX."""
    z = np.asarray(zenith, float)
    if shape == "flat":
        return np.broadcast_to(A0_M2, np.broadcast(energy, z).shape) * (z < Z_MAX)
    return A0_M2 / (1.0 + (1.0 / energy) ** 2) * np.cos(np.radians(z)) * (z < Z_MAX)


def _bias(zenith):
    return 1.0 + 0.1 * np.asarray(zenith) / Z_MAX  # reconstructed energy 0-10% high, rising with zenith


def _psf_sigma_deg(energy, shape):
    return np.full(np.shape(energy), 0.3) if shape == "flat" else 0.15 + 0.5 * np.asarray(energy) ** -0.5


UNITS = {"ENERG_LO": "TeV", "ENERG_HI": "TeV", "THETA_LO": "deg", "THETA_HI": "deg", "RAD_LO": "deg",
         "RAD_HI": "deg", "EFFAREA": "m2", "RPSF": "sr-1", "SIGMA": "deg", "SIGMA_1": "deg", "SIGMA_2": "deg",
         "SIGMA_3": "deg"}  # fmt: skip


def _table_hdu(columns, name, hduclas2, hduclas4, pointlike=False):
    table = Table(columns)
    for col in table.colnames:
        if col in UNITS:
            table[col].unit = UNITS[col]
    hdu = fits.table_to_hdu(table)
    hdu.name = name
    hdu.header.update(
        HDUDOC="https://github.com/open-gamma-ray-astro/gamma-astro-data-formats",
        HDUVERS="0.2",
        HDUCLASS="GADF",
        HDUCLAS1="RESPONSE",
        HDUCLAS2=hduclas2,
        HDUCLAS3="POINT-LIKE" if pointlike else "FULL-ENCLOSURE",
        HDUCLAS4=hduclas4,
        TELESCOP="SYNTH",
        INSTRUME="synthetic drift-scan array",
    )
    return hdu


def write_irf(path, aeff="flat", psf="flat", psf_format="PSF_TABLE", drop=(), pointlike=False):
    """Write a synthetic GADF IRF file; returns its path."""
    e_c, z_c = _centers(E_EDGES, log=True), _centers(Z_EDGES)
    hdus = [fits.PrimaryHDU()]
    energy = {"ENERG_LO": E_EDGES[:-1][None], "ENERG_HI": E_EDGES[1:][None]}
    theta = {"THETA_LO": Z_EDGES[:-1][None], "THETA_HI": Z_EDGES[1:][None]}
    if "aeff" not in drop:
        area = _area_m2(e_c[None, :], z_c[:, None], aeff)  # (zen, E)
        hdus.append(
            _table_hdu({**energy, **theta, "EFFAREA": area[None]}, "EFFECTIVE AREA", "EFF_AREA", "AEFF_2D", pointlike)
        )
    if "edisp" not in drop:
        cdf = ndtr((MIGRA_EDGES[None, :] - _bias(z_c)[:, None]) / SIGMA_MIGRA)  # (zen, migra edges)
        dens = np.diff(cdf, axis=1) / np.diff(MIGRA_EDGES)[None, :]  # bin-averaged Gaussian density
        matrix = np.repeat(dens[:, :, None], e_c.size, axis=2).astype(np.float32)  # (zen, migra, E)
        cols = {**energy, "MIGRA_LO": MIGRA_EDGES[:-1][None], "MIGRA_HI": MIGRA_EDGES[1:][None], **theta}
        hdus.append(_table_hdu({**cols, "MATRIX": matrix[None]}, "ENERGY DISPERSION", "EDISP", "EDISP_2D"))
    if "psf" not in drop:
        pe_c = _centers(PSF_E_EDGES, log=True)
        pz = {"THETA_LO": PSF_Z_EDGES[:-1][None], "THETA_HI": PSF_Z_EDGES[1:][None]}
        pen = {"ENERG_LO": PSF_E_EDGES[:-1][None], "ENERG_HI": PSF_E_EDGES[1:][None]}
        sig = _psf_sigma_deg(pe_c, psf)  # (E,)
        n_z = PSF_Z_EDGES.size - 1
        if psf_format == "PSF_TABLE":
            r = _centers(RAD_EDGES)
            sig_rad = np.radians(sig)
            rpsf = np.exp(-0.5 * (np.radians(r)[:, None] / sig_rad[None, :]) ** 2) / (2 * np.pi * sig_rad**2)
            rpsf = np.repeat(rpsf[:, None, :], n_z, axis=1)  # (rad, zen, E), sr^-1
            cols = {**pen, **pz, "RAD_LO": RAD_EDGES[:-1][None], "RAD_HI": RAD_EDGES[1:][None], "RPSF": rpsf[None]}
            hdu = _table_hdu(cols, "PSF", "RPSF", "PSF_TABLE")
        elif psf_format == "PSF_3GAUSS":  # one live Gaussian (AMPL_2 = AMPL_3 = 0)
            ones = np.ones((n_z, pe_c.size))
            cols = {**pen, **pz, "SCALE": ones[None], "SIGMA_1": (sig[None, :] * ones)[None]}
            cols.update(AMPL_2=0 * ones[None], SIGMA_2=ones[None], AMPL_3=0 * ones[None], SIGMA_3=ones[None])
            hdu = _table_hdu(cols, "PSF", "RPSF", "PSF_3GAUSS")
        else:  # PSF_KING, gamma = 3
            ones = np.ones((n_z, pe_c.size))
            cols = {**pen, **pz, "GAMMA": 3.0 * ones[None], "SIGMA": (sig[None, :] * ones)[None]}
            hdu = _table_hdu(cols, "PSF", "RPSF", "PSF_KING")
        hdus.append(hdu)
    hdul = fits.HDUList(hdus)
    hdul.writeto(path, overwrite=True)
    return path


def transit_seconds(lat_deg, dec_deg, z_max_deg=Z_MAX):
    """Seconds per sidereal day a source spends at zenith < z_max (spherical triangle, closed form)."""
    lat, dec, zm = np.radians([lat_deg, dec_deg, z_max_deg])
    c = (np.cos(zm) - np.sin(lat) * np.sin(dec)) / (np.cos(lat) * np.cos(dec))
    half = 0.0 if c >= 1 else np.pi if c <= -1 else np.arccos(c)
    return SIDEREAL_DAY_S * half / np.pi


@pytest.fixture(scope="module")
def flat_file(tmp_path_factory):
    return write_irf(tmp_path_factory.mktemp("dl3") / "flat.fits")


@pytest.fixture(scope="module")
def cos_file(tmp_path_factory):
    return write_irf(tmp_path_factory.mktemp("dl3") / "cos.fits", aeff="cos", psf="falling")


def test_transit_time_closed_form_by_brute_force():
    """The test's own closed form against counting hour angles on a fine grid."""
    h = np.linspace(-np.pi, np.pi, 2_000_001)[:-1]
    for dec in (-20.0, 0.0, LAT, 50.0, 63.0, 80.0):
        lat, d = np.radians(LAT), np.radians(dec)
        z = np.degrees(np.arccos(np.sin(lat) * np.sin(d) + np.cos(lat) * np.cos(d) * np.cos(h)))
        assert transit_seconds(LAT, dec) == pytest.approx(SIDEREAL_DAY_S * np.mean(z < Z_MAX), abs=0.2)


@pytest.mark.parametrize("dec", [-20.0, 0.0, LAT, 40.0, 63.0])
def test_exposure_flat_area_is_area_times_time_in_cut(flat_file, dec):
    resp = dl3_response(flat_file, site_latitude_deg=LAT, dec_nodes_deg=[dec], analysis_bins=BANDS, n_transits=300.0)
    expected = 300.0 * transit_seconds(LAT, dec) * A0_M2 * 1e4  # cm^2 s
    assert resp.meta["exposure_cm2_s"][0] == pytest.approx(np.full(resp.energy_true_tev.size, expected), rel=1e-9)


def test_livetime_days_equals_transits(flat_file):
    kw = dict(site_latitude_deg=LAT, dec_nodes_deg=[22.0], analysis_bins=BANDS)
    a = dl3_response(flat_file, n_transits=100.0, **kw)
    b = dl3_response(flat_file, livetime_days=100.0 * SIDEREAL_DAY_S / 86400.0, **kw)
    np.testing.assert_allclose(a.counts_matrix, b.counts_matrix, rtol=1e-12)
    with pytest.raises(ValueError, match="exactly one"):
        dl3_response(flat_file, **kw)


def test_quadrature_weights_sum_to_transit_time():
    z, w = hour_angle_quadrature(LAT, 10.0, Z_MAX, zenith_breaks_deg=_centers(Z_EDGES))
    assert w.sum() == pytest.approx(transit_seconds(LAT, 10.0), rel=1e-12)
    assert np.all(z < Z_MAX) and z.min() >= abs(LAT - 10.0) - 1e-9
    assert hour_angle_quadrature(LAT, -40.0, Z_MAX)[0].size == 0


def _brute_force_counts(dec, index=2.6, n_h=1601, n_e=3001):
    """Counts per band for dnde = E^-index (TeV^-1 cm^-2 s^-1), one transit; and PSF weights per band.

    Returns ``counts (n_band,)``, ``energy (n_e,)``, ``weights (n_band, n_h, n_e)``: the integrand of
    the counts over (h, E) on Simpson grids (the PSF of band b is the weights-mixture of sigma(E)).
    """
    lat, d = np.radians(LAT), np.radians(dec)
    c = (np.cos(np.radians(Z_MAX)) - np.sin(lat) * np.sin(d)) / (np.cos(lat) * np.cos(d))
    h = np.linspace(0.0, np.arccos(np.clip(c, -1, 1)), n_h)
    z = np.degrees(np.arccos(np.sin(lat) * np.sin(d) + np.cos(lat) * np.cos(d) * np.cos(h)))
    log_e = np.linspace(np.log(0.1), np.log(1000.0), n_e)
    e = np.exp(log_e)
    area = _area_m2(e[None, :], np.minimum(z, Z_MAX - 1e-9)[:, None], "cos") * 1e4  # cm^2
    lo, hi = BANDS[:-1], BANDS[1:]
    mu0 = _bias(z)[None, :, None]
    prob = ndtr((hi[:, None, None] / e - mu0) / SIGMA_MIGRA) - ndtr((lo[:, None, None] / e - mu0) / SIGMA_MIGRA)
    integrand = area[None] * prob * (e**-index * e)[None, None, :]  # d/dlnE
    counts = 2 * SIDEREAL_DAY_S / (2 * np.pi) * simpson(simpson(integrand, x=log_e, axis=2), x=h, axis=1)
    return counts, e, integrand


@pytest.mark.parametrize("dec", [-10.0, LAT, 50.0])
def test_power_law_counts_match_independent_integral(cos_file, dec):
    """Zenith-dependent area and migration bias, energy-dependent area: counts per band to 1e-3."""
    resp = dl3_response(cos_file, site_latitude_deg=LAT, dec_nodes_deg=[dec], analysis_bins=BANDS, n_transits=1.0)
    counts = resp.counts_matrix[0] @ resp.energy_true_tev**-2.6
    expected, _, _ = _brute_force_counts(dec)
    np.testing.assert_allclose(counts, expected, rtol=1e-3)
    assert resp.bin_names == ("E1-3", "E3-10", "E10-30", "E30-100")
    np.testing.assert_allclose(resp.energy_reco_edges_tev, np.stack([BANDS[:-1], BANDS[1:]], 1))
    assert resp.meta["instrument"] == "synthetic drift-scan array"
    assert resp.meta["psf_format"] == "PSF_TABLE"


def test_declination_nodes_interpolate_and_bands_as_pairs(cos_file):
    decs = np.array([0.0, 20.0, 40.0])
    pairs = np.stack([BANDS[:-1], BANDS[1:]], 1)
    resp = dl3_response(cos_file, site_latitude_deg=LAT, dec_nodes_deg=decs, analysis_bins=pairs, n_transits=1.0)
    for d, dec in enumerate(decs):
        single = dl3_response(cos_file, site_latitude_deg=LAT, dec_nodes_deg=[dec], analysis_bins=BANDS, n_transits=1.0)
        np.testing.assert_allclose(resp.counts_matrix[d], single.counts_matrix[0], rtol=1e-12)


def test_flat_psf_mixture_r68(flat_file):
    resp = dl3_response(flat_file, site_latitude_deg=LAT, dec_nodes_deg=[22.0], analysis_bins=BANDS, n_transits=1.0)
    r68 = 0.3 * np.sqrt(-2 * np.log(0.32))
    for b in range(resp.n_bins):  # 1% asked for; measured 1e-4 (table discretisation), so 2e-3 here
        assert resp.psf.containment_radius(0.68, b) == pytest.approx(r68, rel=2e-3)
        assert resp.psf_table.containment(r68, b) == pytest.approx(0.68, abs=0.003)
    assert np.all(resp.meta["valid_bins"])


def test_energy_dependent_psf_is_the_counts_weighted_mixture(cos_file):
    """sigma(E) falls with energy: each band's R68 is that of the mixture weighted by its counts."""
    dec = 30.0
    resp = dl3_response(cos_file, site_latitude_deg=LAT, dec_nodes_deg=[dec], analysis_bins=BANDS, n_transits=1.0)
    _, e, integrand = _brute_force_counts(dec, n_h=401, n_e=1501)
    sig = _psf_sigma_deg(e, "falling")
    r68s = []
    for b in range(resp.n_bins):
        w = integrand[b].sum(axis=0)  # uniform grids: sums are proportional to the integrals
        w = w / w.sum()

        def frac(r, w=w):
            return np.sum(w * (1 - np.exp(-0.5 * (r / sig) ** 2))) - 0.68

        r68 = brentq(frac, 0.01, 5.0)
        r68s.append(r68)
        # measured <= 4e-4 (PSF table at 15 energies per decade, mixture fit); 2e-3 leaves margin
        assert resp.psf.containment_radius(0.68, b) == pytest.approx(r68, rel=2e-3)
    assert r68s[0] > 1.5 * r68s[-1]  # the check can tell the bands apart


@pytest.mark.parametrize("fmt", ["PSF_3GAUSS", "PSF_KING"])
def test_parametric_psfs(tmp_path, fmt):
    path = write_irf(tmp_path / "par.fits", psf_format=fmt)
    resp = dl3_response(path, site_latitude_deg=LAT, dec_nodes_deg=[22.0], analysis_bins=BANDS, n_transits=1.0)
    assert resp.meta["psf_format"] == fmt
    if fmt == "PSF_3GAUSS":
        r68 = 0.3 * np.sqrt(-2 * np.log(0.32))
    else:  # King: 1 - (1 + r^2 / (2 g s^2))^(1 - g) = 0.68
        g = 3.0
        r68 = 0.3 * np.sqrt(2 * g * (0.32 ** (1 / (1 - g)) - 1))
    for b in range(resp.n_bins):
        assert resp.psf_table.containment(r68, b) == pytest.approx(0.68, abs=0.003)
        assert resp.psf.containment_radius(0.68, b) == pytest.approx(r68, rel=0.01)


# --- errors ---------------------------------------------------------------------------------------


def test_declination_never_in_the_cut_is_an_error(flat_file):
    with pytest.raises(DL3FileError, match=r"declination -40.*never comes within.*flat\.fits|flat\.fits.*-40"):
        dl3_response(flat_file, site_latitude_deg=LAT, dec_nodes_deg=[-40.0, 0.0], analysis_bins=BANDS, n_transits=1)
    with pytest.raises(DL3FileError, match="inside"):
        dl3_response(
            flat_file, site_latitude_deg=LAT, dec_nodes_deg=[0.0], analysis_bins=BANDS, n_transits=1, psf_dec_deg=70.0
        )


def test_missing_file(tmp_path):
    missing = tmp_path / "nope.fits"
    with pytest.raises(DL3FileError, match=r"nope\.fits does not exist"):
        dl3_response(missing, site_latitude_deg=LAT, dec_nodes_deg=[0.0], analysis_bins=BANDS, n_transits=1)


@pytest.mark.parametrize("drop,hdu", [("psf", "PSF"), ("edisp", "ENERGY DISPERSION"), ("aeff", "EFFECTIVE AREA")])
def test_missing_hdu_is_named(tmp_path, drop, hdu):
    path = write_irf(tmp_path / f"no_{drop}.fits", drop=(drop,))
    with pytest.raises(DL3FileError, match=rf"no_{drop}\.fits has no .*'{hdu}'.*{drop}_file="):
        dl3_response(path, site_latitude_deg=LAT, dec_nodes_deg=[0.0], analysis_bins=BANDS, n_transits=1)


def test_separate_component_files(tmp_path, cos_file):
    no_psf = write_irf(tmp_path / "no_psf.fits", aeff="cos", psf="falling", drop=("psf",))
    psf_only = write_irf(tmp_path / "psf_only.fits", psf="falling", drop=("aeff", "edisp"))
    kw = dict(site_latitude_deg=LAT, dec_nodes_deg=[10.0], analysis_bins=BANDS, n_transits=1.0)
    a = dl3_response(no_psf, psf_file=psf_only, **kw)
    b = dl3_response(cos_file, **kw)
    np.testing.assert_allclose(a.counts_matrix, b.counts_matrix, rtol=1e-12)
    np.testing.assert_allclose(a.psf.sigma_deg, b.psf.sigma_deg, rtol=1e-9)
    assert a.meta["files"]["psf"]["file"].endswith("psf_only.fits")


def test_files_of_other_formats(tmp_path):
    text = tmp_path / "irf.fits"
    text.write_text("not a FITS file\n")
    with pytest.raises(DL3FileError, match=r"irf\.fits is not a readable FITS file"):
        dl3_response(text, site_latitude_deg=LAT, dec_nodes_deg=[0.0], analysis_bins=BANDS, n_transits=1)
    # a map IRF (gammapy/HAWC layout): image HDU "AEFF", no GADF tables
    mapfile = tmp_path / "EffectiveAreaMap.fits"
    fits.HDUList([fits.PrimaryHDU(), fits.ImageHDU(np.ones((3, 4, 4)), name="AEFF")]).writeto(mapfile)
    with pytest.raises(DL3FileError, match=r"EffectiveAreaMap\.fits is not a GADF DL3 IRF file.*hawc_response"):
        dl3_response(mapfile, site_latitude_deg=LAT, dec_nodes_deg=[0.0], analysis_bins=BANDS, n_transits=1)
    # the right HDU names, but the effective area is some other table
    bad = write_irf(tmp_path / "bad_table.fits", drop=("aeff",))
    with fits.open(bad) as hdul:
        hdus = [h.copy() for h in hdul] + [fits.BinTableHDU(Table({"X": [1.0]}), name="EFFECTIVE AREA")]
    fits.HDUList(hdus).writeto(bad, overwrite=True)
    with pytest.raises(DL3FileError, match=r"bad_table\.fits: HDU 'EFFECTIVE AREA' is not a GADF AEFF_2D table"):
        dl3_response(bad, site_latitude_deg=LAT, dec_nodes_deg=[0.0], analysis_bins=BANDS, n_transits=1)


def test_point_like_irf_is_refused(tmp_path):
    path = write_irf(tmp_path / "pointlike.fits", pointlike=True)
    with pytest.raises(DL3FileError, match="POINT-LIKE"):
        dl3_response(path, site_latitude_deg=LAT, dec_nodes_deg=[0.0], analysis_bins=BANDS, n_transits=1)


@pytest.mark.data
def test_hawc_map_irf_is_not_gadf(hawc_data):
    """HAWC's public IRFs are map IRFs: refused with a pointer to hawc_response (a real bad input)."""
    path = hawc_data / "irfs" / "EffectiveAreaMap_Crab_fHitbin5NN.fits.gz"
    with pytest.raises(DL3FileError, match=r"EffectiveAreaMap_Crab_fHitbin5NN.*hawc_response"):
        dl3_response(path, site_latitude_deg=LAT, dec_nodes_deg=[22.0], analysis_bins=BANDS, n_transits=1)


def test_bin_with_a_dl3_response_writes_a_dataset(cos_file, tmp_path):
    """`skyfit bin events.fits --response dl3:IRF` bins by the reconstructed energy and stores the response that
    dl3_response gives for the ROI's declinations."""
    from skyfit import Dataset
    from skyfit.cli import main
    from skyfit.maps import HealpixMaps, HealpixROI

    rng = np.random.default_rng(5)
    n = 2000
    ra, dec = 83.6 + rng.normal(0, 0.5, n), 22.0 + rng.normal(0, 0.5, n)
    energy = 10 ** rng.uniform(0.0, 2.0, n)
    cols = [fits.Column(k, "D", array=v) for k, v in (("RA", ra), ("DEC", dec), ("ENERGY", energy))]
    fits.BinTableHDU.from_columns(cols, name="EVENTS").writeto(tmp_path / "events.fits")
    roi = HealpixROI.from_disc((83.6, 22.0), 1.0, 64)
    bkg = HealpixMaps(np.ones((len(BANDS) - 1, roi.n_pix)), roi, [f"b{i}" for i in range(len(BANDS) - 1)])
    bkg.write(tmp_path / "bkg.fits")
    out = tmp_path / "counts.fits"
    args = ["bin", str(tmp_path / "events.fits"), "--center", "83.6", "22.0", "--radius", "1", "--nside", "64",
            "--energy-edges", *map(str, BANDS), "--response", f"dl3:{cos_file}", "--site-latitude", str(LAT),
            "--transits", "100", "--background", str(tmp_path / "bkg.fits"), "--outdir", str(tmp_path)]  # fmt: skip
    assert main(args) == 0
    ds = Dataset.read(out)
    inside = roi.contains(ra, dec) & (energy >= BANDS[0]) & (energy < BANDS[-1])
    assert ds.counts.data.sum() == inside.sum()
    assert np.array_equal(ds.response.energy_reco_edges_tev, np.stack([BANDS[:-1], BANDS[1:]], axis=1))
    direct = dl3_response(cos_file, site_latitude_deg=LAT, dec_nodes_deg=ds.response.dec_nodes_deg,
                          analysis_bins=BANDS, n_transits=100.0)  # fmt: skip
    np.testing.assert_array_equal(ds.response.counts_matrix, direct.counts_matrix)
    # without the array's latitude the command says what it needs
    assert main([a for a in args if a not in ("--site-latitude", str(LAT))]) == 2
