"""Blended sources in small ROIs: the population of ``benchmarks/crowded_fields.py`` (issue #30) and the
training and validation examples of the multiplicity network (:mod:`skyfit.detect.multiplicity`).

A *blend* is one ROI (the :data:`N_PIX` HEALPix pixels at nside 512 nearest its centre: 16 deg2, a disc of
about 2.26 deg; a fixed count keeps the compiled likelihood's shapes the same from ROI to ROI) in the
Galactic plane (l 15-75 deg, b -1..1 deg) with one year of one LHAASO-like detector (WCDA for even k, KM2A
for odd k), the cosmic-ray background and the Galactic diffuse band, and 1-3 sources close together:

* ``pair``: two points, ``triple``: three points, ``point_on_extended``: a Gaussian (r39 log-uniform in
  0.2-1 deg) with a point source, ``single`` (training and validation only): one point (half of them) or
  Gaussian (r39 log-uniform in 0.05-1 deg), as bright as a blend: its amplitude is the sum of a shadow
  pair's (2/3 of them) or triple's relative amplitudes, times the scale at which the shadow's faintest
  member, a point at its place, has TS_true T (without this a network learns "bright means blend": the
  first training, singles at the faintest member's flux, flagged 4 % of the singles and 97 % of the
  pairs even at 0.1-0.2 PSF68, where no shape can tell);
* the kind of blend k is ``kinds[k % len(kinds)]`` and its detector WCDA for even k: the kinds' count is
  odd, so every kind comes in both detectors;
* the first member within 0.25 deg (in l and b) of the centre, each other one at u PSF68 from it (log10 u
  uniform in -1..0, the detector's median PSF68) in a uniform direction;
* relative amplitudes 1 and 10^U(0, 1) (the brighter one drawn 50/50 for two members; a triple's second
  and third 10^U(0, 1) each), one spectral index (the finder's default + U(-0.2, 0.2));
* the overall scale such that the least significant member's expected TS (:func:`asimov_ts`, alone over
  background and diffuse emission) is T, log10 T uniform in log10 37..log10 300.

Blend k of stream s is drawn from ``numpy.random.default_rng([30, s, k])`` (the benchmark uses stream 1;
the multiplicity network is trained on stream 3 and validated on stream 2).
"""

from __future__ import annotations

import healpy as hp
import numpy as np

from ..maps import HealpixROI, unit_vectors
from .tsmap import DEFAULT_INDEX

__all__ = ["BENCHMARK_KINDS", "TRAINING_KINDS", "N_PIX", "NSIDE", "asimov_ts", "draw_blend", "roi_of", "realise",
           "roi_contains"]  # fmt: skip

BENCHMARK_KINDS = ("pair", "pair", "pair", "point_on_extended", "triple")  # blend k is kinds[k % len(kinds)]
# an odd count: blend k's detector (k % 2) and kind (k % 7) are independent over k (with 8 kinds every single
# was WCDA and every triple KM2A, and the second network trained learnt "KM2A means a blend")
TRAINING_KINDS = ("single", "pair", "single", "point_on_extended", "pair", "triple", "single")
TS_MIN, TS_MAX = 37.0, 300.0
BOX_DEG = 4.0
NSIDE = 512
N_PIX = 1220  # 16 deg2 at nside 512


def asimov_ts(s: np.ndarray, mu: np.ndarray) -> float:
    """The expected (Asimov) TS of predicted counts ``s`` over the prediction ``mu`` without them."""
    s, mu = np.asarray(s, float), np.maximum(np.asarray(mu, float), 1e-30)
    return float(2.0 * np.sum((mu + s) * np.log1p(s / mu) - s))


def draw_blend(k: int, stream: int, kinds=BENCHMARK_KINDS) -> dict:
    """Blend k of a stream: its detector, ROI box, members (separations in PSF68, directions, relative
    amplitudes) and the generator that then draws its counts (:func:`realise`)."""
    rng = np.random.default_rng([30, stream, k])
    det = "WCDA" if k % 2 == 0 else "KM2A"
    kind = kinds[k % len(kinds)]
    lc, bc = rng.uniform(15.0, 75.0), rng.uniform(-1.0, 1.0)
    l0, b0 = lc + rng.uniform(-0.25, 0.25), bc + rng.uniform(-0.25, 0.25)
    n_other = {"triple": 2, "single": 0}.get(kind, 1)
    seps = 10.0 ** rng.uniform(-1.0, 0.0, n_other)
    phis = rng.uniform(0.0, 2.0 * np.pi, n_other)
    rel = 10.0 ** rng.uniform(0.0, 1.0, n_other)
    r39_ext = float(10.0 ** rng.uniform(np.log10(0.2), 0.0)) if kind == "point_on_extended" else 0.0
    if kind == "single":
        amps = [1.0]
    elif kind != "triple" and rng.random() < 0.5:  # which member is the brighter
        amps = [float(rel[0]), 1.0]
    else:
        amps = [1.0, *(float(r) for r in rel)]
    index = DEFAULT_INDEX[det] + rng.uniform(-0.2, 0.2)
    log_ts = rng.uniform(np.log10(TS_MIN), np.log10(TS_MAX))
    total = 1.0
    if kind == "single":  # as bright as the blends: the summed amplitude of a shadow pair (2/3) or triple
        r39_ext = float(10.0 ** rng.uniform(np.log10(0.05), 0.0)) if rng.random() < 0.5 else 0.0
        total = 1.0 + float(np.sum(10.0 ** rng.uniform(0.0, 1.0, 1 if rng.random() < 2 / 3 else 2)))
    return {"k": k, "det": det, "kind": kind, "region": (lc - BOX_DEG / 2, lc + BOX_DEG / 2, bc - BOX_DEG / 2,
            bc + BOX_DEG / 2), "first": (l0, b0), "seps_psf": seps.tolist(), "phis": phis.tolist(), "amps": amps,
            "r39_ext": r39_ext, "index": index, "ts_target": 10.0**log_ts, "rng": rng,
            "single_total": total}  # fmt: skip


def roi_of(blend: dict) -> HealpixROI:
    """The N_PIX pixels nearest the blend's ROI centre: the same count everywhere, so the same shapes."""
    from ._skies import _icrs

    lon, lat = (0.5 * (blend["region"][0] + blend["region"][1]), 0.5 * (blend["region"][2] + blend["region"][3]))
    centre = unit_vectors(*(float(v) for v in _icrs(lon, lat)))
    near = hp.query_disc(NSIDE, centre, np.radians(2.6), nest=True)
    ra, dec = hp.pix2ang(NSIDE, near, nest=True, lonlat=True)
    order = np.argsort(-(unit_vectors(ra, dec) @ centre), kind="stable")
    return HealpixROI(NSIDE, True, np.sort(near[order[:N_PIX]]))


def roi_contains(roi: HealpixROI, ra: float, dec: float) -> bool:
    """Whether (ra, dec) falls in a pixel of ``roi``."""
    pix = hp.ang2pix(roi.nside, ra, dec, nest=roi.nest, lonlat=True)
    return bool(roi.index_of(np.array([pix]))[0] >= 0)


def realise(blend: dict) -> dict:
    """The blend simulated: its dataset (counts), members (l, b, r39, spectra with absolute amplitudes),
    their TS_true, the detector's PSF68, the true model, the ROI and ``mu``, the predicted counts of
    background and diffuse emission (what the sources stand out from)."""
    from ..likelihood import npred
    from ..models import Models
    from ..simulate import lhaaso_dataset, simulate_dataset
    from ..skies import galactic_diffuse
    from ._skies import psf68, sky_model

    det = blend["det"]
    ds0 = lhaaso_dataset(det, roi=roi_of(blend), name=det)
    p68 = psf68(ds0.response)
    l0, b0 = blend["first"]
    members = [{"l": l0 % 360.0, "b": b0, "r39": blend["r39_ext"]}]
    for u, phi in zip(blend["seps_psf"], blend["phis"], strict=True):
        d = u * p68
        members.append({"l": (l0 + d * np.cos(phi) / np.cos(np.radians(b0))) % 360.0,
                        "b": b0 + d * np.sin(phi), "r39": 0.0})  # fmt: skip
    diffuse = galactic_diffuse()
    mu = np.asarray(npred(Models([diffuse]), ds0))

    def with_scale(a):
        return [{**m, "spectra": {det: (a * r * 1e-14, blend["index"])}} for m, r in zip(members, blend["amps"],
                strict=True)]  # fmt: skip

    bkg = np.asarray(npred(Models([]), ds0))  # npred counts the background too
    unit = [np.asarray(npred(sky_model([m]), ds0)) - bkg for m in with_scale(1.0)]  # the member's, at scale 1

    def gap(log_a):
        return np.log(min(asimov_ts(10.0**log_a * u, mu) for u in unit)) - np.log(blend["ts_target"])

    from scipy.optimize import brentq

    if blend["kind"] == "single":  # the shadow's faintest member, a point here, has TS_true T
        point = [{**m, "r39": 0.0} for m in with_scale(1.0)]
        unit = [np.asarray(npred(sky_model(point), ds0)) - bkg]
    log_a = brentq(gap, -8.0, 8.0, xtol=1e-8)
    if blend["kind"] == "single":
        log_a += np.log10(blend["single_total"])
        unit = [np.asarray(npred(sky_model([m]), ds0)) - bkg for m in with_scale(1.0)]
    members = with_scale(10.0**log_a)
    ts_true = [asimov_ts(10.0**log_a * u, mu) for u in unit]
    truth = Models(list(sky_model(members).sources) + [diffuse])
    ds = simulate_dataset(truth.for_datasets([det]), ds0, int(blend["rng"].integers(2**63)))
    return {"dataset": ds, "members": members, "ts_true": ts_true, "psf68": p68, "truth": truth, "roi": ds0.roi,
            "mu": mu}  # fmt: skip
