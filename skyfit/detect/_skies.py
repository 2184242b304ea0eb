"""Training and test skies for the neural-network prior, and the images the network reads.

A *sky* is a Galactic-plane field (a box in l, b) with sources drawn from a population, the Galactic
diffuse band and the residual cosmic-ray background, simulated as one year of LHAASO-like WCDA and KM2A
data with skyfit's own simulator (:func:`skyfit.simulate.simulate_dataset`).

Populations (``population=``):

* ``"1lhaaso"`` (training): each source takes the spectra (N0, index per detector, a detector with no
  component in the row has none) of a random 1LHAASO source, its N0 scaled by 10^N(-0.3, 0.4) (the
  catalogue is flux-limited: fainter sources exist and the network must learn where detection stops);
  extension r39 = 0 (a point) for half of them, otherwise uniform in 0.05-1 deg, shared by both
  detectors. 35 % of sources get one companion and 15 % two, each at 0.2-1.5 PSF68 (of the brighter
  detector) in a random direction: overlapping pairs and triples.
* ``"wide"`` (held out, never trained on): N0 log-uniform over 0.05-5 times the 1LHAASO median per
  detector, index 1LHAASO's ± 0.3, 30 % points and otherwise r39 log-uniform in 0.1-1.5 deg (beyond
  the training range), companions as above.

The *image* is a plate carrée grid in Galactic (l, b) of ``GRID_DEG`` cells: each cell takes its
HEALPix pixel's counts ``n`` and prediction ``mu`` (background and the current model), summed over
groups of analysis bins, as the variance-stabilised residual 2 (sqrt(n + 3/8) - sqrt(mu + 3/8)); one more
channel marks the cells inside the ROI.
"""

from __future__ import annotations

from dataclasses import dataclass

import healpy as hp
import numpy as np

from ..models import GaussianSpatialModel, Models, PointSpatialModel, PowerLaw, Source
from .tsmap import REFERENCE_TEV

__all__ = ["GRID_DEG", "CHANNEL_GROUPS", "Grid", "draw_sky", "residual_image", "targets", "counts_per_amplitude"]

GRID_DEG = 0.1
# analysis bins summed into one channel, per detector (KM2A's sparse high-energy bins together)
CHANNEL_GROUPS = {
    "WCDA": ((0,), (1,), (2,), (3,), (4, 5)),
    "KM2A": ((0,), (1,), (2,), (3, 4, 5, 6, 7, 8)),
}
DETECTORS = ("WCDA", "KM2A")
N_CHANNELS = sum(len(g) for g in CHANNEL_GROUPS.values()) + 1


@dataclass(frozen=True)
class Grid:
    """Cell centres ``l0 + i * step`` (i < nl), ``b0 + j * step`` (j < nb), deg; images are (nb, nl)."""

    l0: float
    b0: float
    nl: int
    nb: int
    step: float = GRID_DEG

    @classmethod
    def covering(cls, roi, step: float = GRID_DEG) -> Grid:
        """The smallest grid whose cells cover every pixel of ``roi`` (Galactic box around it)."""
        lon, lat = _galactic(*roi.radec())
        ref = lon[0]
        dl = (lon - ref + 180.0) % 360.0 - 180.0
        l_min, l_max = ref + dl.min(), ref + dl.max()
        nl = int(np.ceil((l_max - l_min) / step)) + 1
        nb = int(np.ceil((lat.max() - lat.min()) / step)) + 1
        return cls(float(l_min), float(lat.min()), nl, nb, step)

    def centers(self) -> tuple[np.ndarray, np.ndarray]:
        ll, bb = np.meshgrid(self.l0 + self.step * np.arange(self.nl), self.b0 + self.step * np.arange(self.nb))
        return ll, bb

    def cell_of(self, l_deg, b_deg) -> tuple[np.ndarray, np.ndarray]:
        """(i, j) of the cell holding (l, b), and the offsets from its centre in cells."""
        fi = (((np.asarray(l_deg) - self.l0 + 180.0) % 360.0) - 180.0) / self.step
        fj = (np.asarray(b_deg) - self.b0) / self.step
        i, j = np.rint(fi).astype(int), np.rint(fj).astype(int)
        return i, j, fi - i, fj - j


def _galactic(ra, dec):
    from astropy.coordinates import SkyCoord

    g = SkyCoord(np.asarray(ra, float), np.asarray(dec, float), unit="deg").galactic
    return g.l.deg, g.b.deg


def _icrs(lon, lat):
    from astropy.coordinates import SkyCoord

    c = SkyCoord(np.asarray(lon, float), np.asarray(lat, float), unit="deg", frame="galactic").icrs
    return c.ra.deg, c.dec.deg


def _cell_pixels(grid: Grid, roi) -> np.ndarray:
    """Index into ``roi.pixels`` of each cell's HEALPix pixel (-1 outside the ROI), shape (nb, nl)."""
    ll, bb = grid.centers()
    ra, dec = _icrs(ll.ravel(), bb.ravel())
    pix = hp.ang2pix(roi.nside, ra, dec, nest=roi.nest, lonlat=True)
    return roi.index_of(pix).reshape(ll.shape)


def instrument_of(ds) -> str:
    return str(ds.meta.get("instrument", ds.name)).upper()


def residual_image(datasets, mus, grid: Grid) -> np.ndarray:
    """The network's input (N_CHANNELS, nb, nl) float32 for ``datasets`` (one per detector, WCDA and
    KM2A, matched by instrument) and their predictions ``mus`` (n_bins, n_pix) without the sources to
    find. A detector that is absent gives zero channels."""
    by_inst = {instrument_of(d): (d, np.asarray(m, float)) for d, m in zip(datasets, mus, strict=True)}
    channels = []
    inside = np.zeros((grid.nb, grid.nl), bool)
    for det in DETECTORS:
        groups = CHANNEL_GROUPS[det]
        if det not in by_inst:
            channels += [np.zeros((grid.nb, grid.nl))] * len(groups)
            continue
        ds, mu = by_inst[det]
        idx = _cell_pixels(grid, ds.roi)
        ok = idx >= 0
        if ds.mask is not None:
            ok &= np.all(np.asarray(ds.mask)[:, np.maximum(idx, 0)], axis=0)
        inside |= ok
        counts = np.asarray(ds.counts.data, float)
        for g in groups:
            n = counts[list(g)].sum(axis=0)[np.maximum(idx, 0)]
            m = mu[list(g)].sum(axis=0)[np.maximum(idx, 0)]
            channels.append(np.where(ok, 2.0 * (np.sqrt(n + 0.375) - np.sqrt(m + 0.375)), 0.0))
    channels.append(inside.astype(float))
    return np.stack(channels).astype(np.float32)


def counts_per_amplitude(response, dec_deg: float, index: float, reference_tev: float, ra_deg=None) -> np.ndarray:
    """Expected counts per analysis bin of a power law of unit amplitude at ``dec_deg`` (and ``ra_deg``,
    which a response tabulated over a sky grid needs)."""
    p = {"amplitude": 1.0, "index": index, "reference": reference_tev}
    return response.counts_matrix_toward(ra_deg, dec_deg) @ np.asarray(PowerLaw.dnde(response.energy_true_tev, p))


def psf68(response) -> float:
    """A representative PSF68 of a detector (deg): the median over its analysis bins."""
    return float(np.median([response.psf.containment_radius(0.68, i) for i in range(response.n_bins)]))


# ---- populations ------------------------------------------------------------------------------------
def _catalog_spectra(table) -> list[dict]:
    """Per 1LHAASO source: {detector: (N0, index)} of its components."""
    out = []
    for row in table:
        comp = {}
        for suffix in ("", "_b"):
            det = row["Model_a" if suffix == "" else "Model_b"]
            det = (det.decode() if isinstance(det, bytes) else str(det)).strip()
            n0, g = row["N0" + suffix], row["gamma" + suffix]
            if det in DETECTORS and not np.ma.is_masked(n0) and np.isfinite(float(n0)) and np.isfinite(float(g)):
                comp[det] = (float(n0), float(g))
        if comp:
            out.append(comp)
    return out


def _draw_parent(rng, population: str, spectra: list[dict], medians: dict) -> tuple[dict, float]:
    if population == "1lhaaso":
        comp = spectra[rng.integers(len(spectra))]
        scale = 10.0 ** rng.normal(-0.3, 0.4)
        spec = {d: (n0 * scale, g) for d, (n0, g) in comp.items()}
        r39 = 0.0 if rng.random() < 0.5 else float(rng.uniform(0.05, 1.0))
    elif population == "wide":
        comp = spectra[rng.integers(len(spectra))]
        spec = {d: (medians[d] * 10.0 ** rng.uniform(np.log10(0.05), np.log10(5.0)), g + rng.uniform(-0.3, 0.3))
                for d, (_, g) in comp.items()}  # fmt: skip
        r39 = 0.0 if rng.random() < 0.3 else float(10.0 ** rng.uniform(-1.0, np.log10(1.5)))
    else:
        raise ValueError(f"unknown population {population!r}: use '1lhaaso' (training) or 'wide' (held out)")
    return spec, r39


def draw_sky(region, seed: int, population: str = "1lhaaso", density_per_deg2: float = 0.25, margin_deg: float = 1.0,
             table=None, psf68_deg: dict | None = None) -> list[dict]:  # fmt: skip
    """True sources of one field: dicts with l, b, r39 and per-detector (N0, index). ``region`` is a
    :class:`skyfit.catalog.Region`; sources are placed within it grown by ``margin_deg``."""
    from ..skies import read_1lhaaso

    rng = np.random.default_rng(seed)
    spectra = _catalog_spectra(read_1lhaaso() if table is None else table)
    medians = {d: float(np.median([s[d][0] for s in spectra if d in s])) for d in DETECTORS}
    psf68_deg = psf68_deg or {"WCDA": 0.45, "KM2A": 0.3}
    g = region.grown(margin_deg)
    area = region.area_deg2
    sources = []
    for _ in range(rng.poisson(density_per_deg2 * area)):
        spec, r39 = _draw_parent(rng, population, spectra, medians)
        lon = rng.uniform(g.l_min, g.l_max)
        lat = float(np.clip(rng.normal(0.0, 1.2), g.b_min, g.b_max))
        group = [{"l": lon % 360.0, "b": lat, "r39": r39, "spectra": spec}]
        u = rng.random()
        n_comp = 2 if u < 0.15 else 1 if u < 0.5 else 0
        for _ in range(n_comp):
            spec2, r39b = _draw_parent(rng, population, spectra, medians)
            bright = max(spec, key=lambda d: spec[d][0] / medians[d])
            sep = rng.uniform(0.2, 1.5) * psf68_deg[bright]
            phi = rng.uniform(0, 2 * np.pi)
            lat2 = lat + sep * np.sin(phi)
            lon2 = lon + sep * np.cos(phi) / np.cos(np.radians(lat))
            group.append({"l": lon2 % 360.0, "b": lat2, "r39": r39b, "spectra": spec2})
        sources += group
    # companions may fall outside the simulated box: they are not part of the field
    return [s for s in sources if g.contains(s["l"], s["b"])]


def sky_model(sources: list[dict], prefix: str = "s") -> Models:
    """The sources as a :class:`Models`: one component per source and detector (``s003_WCDA``)."""
    out = []
    for k, s in enumerate(sources):
        ra, dec = (float(v) for v in _icrs(s["l"], s["b"]))
        for det, (n0, index) in s["spectra"].items():
            if s["r39"] > 0:
                spatial = GaussianSpatialModel.create(ra, dec, sigma=s["r39"])
            else:
                spatial = PointSpatialModel.create(ra, dec)
            spectral = PowerLaw.create(amplitude=n0, index=index, reference=REFERENCE_TEV[det])
            out.append(Source(f"{prefix}{k:03d}_{det}", spatial, spectral, datasets=(det,)))
    return Models(out)


def targets(sources: list[dict], datasets, mus, grid: Grid, ts_min: float = 16.0) -> dict:
    """What the network learns, per detector: the components whose expected TS (background-dominated
    estimate, Asimov) is at least ``ts_min``, with their cell, offsets, r39 and log10 of their expected
    counts. Returns {det: list of dicts}."""
    out = {}
    for ds, mu in zip(datasets, mus, strict=True):
        det = instrument_of(ds)
        resp = ds.response
        rows = []
        sig2 = np.array([np.sum(resp.psf.weights[i] * resp.psf.sigma_deg[i] ** 2) for i in range(resp.n_bins)])
        pix_area_deg2 = np.degrees(np.sqrt(ds.roi.pixel_area_sr)) ** 2
        for s in sources:
            if det not in s["spectra"]:
                continue
            n0, index = s["spectra"][det]
            ra, dec = (float(v) for v in _icrs(s["l"], s["b"]))
            counts = n0 * counts_per_amplitude(resp, dec, index, REFERENCE_TEV[det])
            pix = hp.ang2pix(ds.roi.nside, ra, dec, nest=ds.roi.nest, lonlat=True)
            k = ds.roi.index_of(np.array([pix]))[0]
            if k < 0:
                continue
            bkg_density = np.asarray(mu)[:, k] / pix_area_deg2  # per deg^2
            # a 2D Gaussian of variance v on a flat background B: TS = s^2 / (4 pi v B) (optimal weights);
            # + s keeps it finite where the source dominates
            var = sig2 + s["r39"] ** 2  # per axis: the PSF mixture's second moment and the source's
            ts = float(np.sum(counts**2 / (4 * np.pi * var * np.maximum(bkg_density, 1e-12) + counts)))
            i, j, di, dj = grid.cell_of(s["l"], s["b"])
            rows.append({"i": int(i), "j": int(j), "di": float(di), "dj": float(dj), "r39": s["r39"],
                         "log10_counts": float(np.log10(max(counts.sum(), 1.0))), "ts": ts,
                         "l": s["l"], "b": s["b"]})  # fmt: skip
        out[det] = [r for r in rows if r["ts"] >= ts_min]
    return out
