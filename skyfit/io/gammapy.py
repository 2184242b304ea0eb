"""A gammapy ``MapDataset`` (WCS or HEALPix) as a skyfit :class:`~skyfit.Dataset` on HEALPix.

What is exact and what is not:

* **HEALPix in ICRS at the same nside**: counts, background and mask are copied pixel for pixel (exact).
* **Any other geometry** (WCS such as CAR or TAN, HEALPix in Galactic coordinates or at another nside):
  the counts of each of the dataset's pixels go to the HEALPix pixel that holds its centre, as if each
  event sat at its pixel's centre (integer counts are kept; nothing is shared or counted twice). That
  moves events by up to half a pixel, a uniform spread of ``s / sqrt(12)`` per axis for pixels of side
  ``s``, which the response's PSF takes on (each Gaussian's width combined with it in quadrature; 0.014
  deg for 0.05 deg pixels). The background, a smooth model, is integrated over each HEALPix pixel from
  ``oversample**2`` nested sub-pixels, each taking the density of the dataset's pixel that holds its
  centre. On the Fermi-LAT Galactic centre the fit agrees with binning the events themselves to a
  fraction of its errors (``tests/test_gammapy_dataset.py``); for exact counts, bin the events
  (``skyfit bin``).
* The **response** is tabulated on a grid over the region (:func:`skyfit.response.fermi.grid_response`):
  the exposure at its nodes (gammapy's interpolation), the PSF of the ``PSFMap`` at the region's centre
  binned per reconstructed-energy bin and fitted by a Gaussian mixture (its containment error per bin in
  ``response.meta["psf_containment_error"]``), and the energy dispersion either the dataset's kernel
  (``edisp="dataset"``: what gammapy predicts) or diagonal (``edisp="diagonal"``: what ``skyfit bin`` of
  Fermi-LAT events assumes).
* The **region** is the pixels whose sub-pixels all lie in the dataset's safe mask (any energy); the
  per-bin mask keeps, in each bin, the pixels wholly inside that bin's safe mask.
"""

from __future__ import annotations

from pathlib import Path

import healpy as hp
import numpy as np

from ..maps import HealpixMaps, HealpixROI, MapFormatError

__all__ = ["from_map_dataset", "GammapyDatasetError"]

TEV_PER = {"keV": 1e-9, "MeV": 1e-6, "GeV": 1e-3, "TeV": 1.0}


class GammapyDatasetError(MapFormatError):
    """A gammapy MapDataset that skyfit cannot take (a missing map, an unknown frame, an empty region)."""


def _read(dataset):
    from gammapy.datasets import MapDataset

    if isinstance(dataset, (str, Path)):
        path = Path(dataset)
        if not path.exists():
            raise GammapyDatasetError(f"{path}: no such file; give a gammapy MapDataset file (MapDataset.write)")
        try:
            return MapDataset.read(path), str(path)
        except Exception as exc:  # noqa: BLE001 - any reader failure is reported with the file named
            raise GammapyDatasetError(f"{path}: gammapy could not read it as a MapDataset ({exc})") from exc
    return dataset, f"MapDataset {dataset.name!r}"


def _default_nside(geom) -> int:
    """The nside whose pixels are closest (in log) to the dataset's pixel size."""
    size = float(np.sqrt(np.median(geom.solid_angle().to_value("sr"))))
    return int(2 ** np.clip(np.round(np.log2(np.sqrt(np.pi / 3) / size)), 0, 15))


def _local_idx(geom, coords, clip=False):
    """Pixel indices of ``coords`` in ``geom``'s data (a partial HEALPix map's own pixels), -1 outside."""
    from gammapy.maps import HpxGeom

    idx = geom.coord_to_idx(coords, clip=clip)
    return geom.global_to_local(idx) if isinstance(geom, HpxGeom) else idx


def _sub_index(geom, roi: HealpixROI, oversample: int) -> np.ndarray:
    """Flat index, in ``geom``'s image, of the pixel holding each sub-pixel centre: (n_pix, oversample**2),
    -1 outside the map."""
    from astropy.coordinates import SkyCoord

    from ..reproject import subpixel_centers

    ra, dec = subpixel_centers(roi, oversample)
    coords = SkyCoord(ra.ravel(), dec.ravel(), unit="deg", frame="icrs")
    idx = _local_idx(geom, coords)
    shape = geom.data_shape
    inside = np.all([np.asarray(i) >= 0 for i in idx], axis=0)
    flat = np.full(inside.shape, -1, dtype=np.int64)
    if len(idx) == 1:  # HEALPix: one index
        flat[inside] = np.asarray(idx[0])[inside]
    else:  # WCS: (x, y) onto (ny, nx)
        flat[inside] = np.ravel_multi_index((np.asarray(idx[1])[inside], np.asarray(idx[0])[inside]), shape)
    return flat.reshape(ra.shape)


def _exact_healpix(geom, roi: HealpixROI):
    """Flat indices of the ROI's pixels in an ICRS HEALPix geometry at the ROI's nside, else None."""
    from gammapy.maps import HpxGeom

    if not isinstance(geom, HpxGeom) or geom.frame != "icrs" or np.size(geom.nside) != 1:
        return None
    if int(np.ravel(geom.nside)[0]) != roi.nside:
        return None
    pixels = (
        roi.pixels if geom.nest == roi.nest else (hp.nest2ring if roi.nest else hp.ring2nest)(roi.nside, roi.pixels)
    )
    lon, lat = hp.pix2ang(roi.nside, pixels, nest=geom.nest, lonlat=True)
    from astropy.coordinates import SkyCoord

    (idx,) = _local_idx(geom, SkyCoord(lon, lat, unit="deg", frame="icrs"))
    return np.asarray(idx)


def _region(geom, safe_any: np.ndarray, nside: int, oversample: int, where: str) -> HealpixROI:
    """The HEALPix pixels (nest) whose sub-pixels all fall on safe pixels of ``geom``."""
    coords = geom.get_coord()
    sky = coords.skycoord.icrs
    on = safe_any.ravel() if safe_any.ndim > 1 else safe_any
    lon, lat = sky.ra.deg.ravel()[on], sky.dec.deg.ravel()[on]
    if not lon.size:
        raise GammapyDatasetError(f"{where}: the safe mask is empty: nothing to fit")
    centres = np.unique(hp.ang2pix(nside, lon, lat, nest=True, lonlat=True))
    # and their neighbours: a HEALPix pixel may hold no map pixel's centre (pixels of similar size)
    neighbours = hp.get_all_neighbours(nside, centres, nest=True).ravel()
    candidates = np.unique(np.concatenate([centres, neighbours[neighbours >= 0]]))
    roi = HealpixROI(nside, True, candidates)
    sub = _sub_index(geom, roi, oversample)
    keep = np.all((sub >= 0) & safe_any.ravel()[np.maximum(sub, 0)], axis=1)
    if not keep.any():
        raise GammapyDatasetError(
            f"{where}: no HEALPix pixel at nside {nside} lies wholly inside the safe mask; give a smaller nside"
        )
    return HealpixROI(nside, True, candidates[keep])


def _integrate(data: np.ndarray, sub: np.ndarray, area_sr: np.ndarray, roi: HealpixROI) -> np.ndarray:
    """Counts-like planes (n_bins, n_image_pix) integrated over each ROI pixel from its sub-pixels."""
    sub_area = hp.nside2pixarea(roi.nside * int(round(np.sqrt(sub.shape[1]))))
    density = data / area_sr[None, :]
    return density[:, sub].sum(axis=-1) * sub_area


def _counts_at_centres(data: np.ndarray, geom, roi: HealpixROI) -> tuple[np.ndarray, float]:
    """Counts (n_bins, n_image_pix) moved to the ROI pixel holding each image pixel's centre; and the
    counts whose pixel centre falls outside the ROI."""
    sky = geom.get_coord().skycoord.icrs
    hpx = hp.ang2pix(roi.nside, sky.ra.deg.ravel(), sky.dec.deg.ravel(), nest=True, lonlat=True)
    pos = np.clip(np.searchsorted(roi.pixels, hpx), 0, roi.n_pix - 1)
    inside = roi.pixels[pos] == hpx
    out = np.stack([np.bincount(pos[inside], weights=plane[inside], minlength=roi.n_pix) for plane in data])
    return np.round(out), float(data[:, ~inside].sum())


def _psf_table(ds, center, where):
    from ..response.fermi import PSFTable

    if ds.psf is None:
        raise GammapyDatasetError(f"{where}: the dataset has no PSF; skyfit needs a PSFMap (MapDataset.psf)")
    psf = ds.psf.psf_map
    if psf.geom.data_shape[-1] > 1 or psf.geom.data_shape[-2] > 1:  # a PSF per position: the region's centre
        psf = ds.psf.to_region_nd_map(center).psf_map
    rad = psf.geom.axes["rad"].center.to_value("deg")
    energy = psf.geom.axes["energy_true"].center.to_value("TeV")
    density = np.asarray(psf.quantity.to_value("sr-1"), dtype=float).reshape(len(energy), len(rad))
    exposure = ds.psf.exposure_map
    exp = (np.asarray(exposure.quantity.to_value("cm2 s"), dtype=float).reshape(len(energy), -1)[:, 0]
           if exposure is not None else np.ones(len(energy)))  # fmt: skip
    if not (np.all(np.isfinite(density)) and np.all(density >= 0)):
        raise GammapyDatasetError(f"{where}: the PSF map has NaN or negative values; fix or recompute it")
    return PSFTable(energy, rad, density, exp, meta={"file": where})


def from_map_dataset(dataset, nside: int | None = None, name: str | None = None, edisp: str = "dataset",
                     psf_oversample: int = 4, oversample: int = 8, grid_step_deg: float = 1.0,
                     n_psf_components: int = 4, spectral_index: float = 2.5):  # fmt: skip
    """A skyfit :class:`~skyfit.Dataset` from a gammapy ``MapDataset`` (or the path of one).

    ``nside``: default the one whose pixels are closest to the dataset's. ``edisp``: ``"dataset"`` (the
    dataset's energy-dispersion kernel, what gammapy predicts; diagonal when it has none) or
    ``"diagonal"``. ``psf_oversample``: sub-pixels per side over which a compact source's PSF is averaged
    (``meta["psf_oversample"]``; 1 for a PSF much wider than the pixels). ``oversample``: sub-pixels per
    side when spreading counts from a geometry that is not ICRS HEALPix at ``nside`` (module docstring).
    The dataset's models are not converted. Raises :class:`GammapyDatasetError` naming the file.
    """
    from ..dataset import Dataset

    ds, where = _read(dataset)
    if edisp not in ("dataset", "diagonal"):
        raise ValueError(f"edisp must be 'dataset' or 'diagonal', got {edisp!r}")
    for what in ("counts", "exposure", "background"):
        if getattr(ds, what) is None:
            raise GammapyDatasetError(f"{where}: the dataset has no {what} map; skyfit needs counts, exposure and "
                                      "background (a background model's npred may serve as background)")  # fmt: skip
    geom = ds.counts.geom.to_image()
    if geom.frame not in ("icrs", "galactic"):
        raise GammapyDatasetError(f"{where}: frame {geom.frame!r}; skyfit takes 'icrs' or 'galactic' maps")
    axis = ds.counts.geom.axes["energy"]
    reco = axis.edges.to_value("TeV")
    n_bins = len(reco) - 1
    safe = (np.ones(ds.counts.data.shape, bool) if ds.mask_safe is None
            else np.asarray(ds.mask_safe.data, bool))  # fmt: skip
    safe = safe.reshape(n_bins, -1)
    nside = nside or _default_nside(geom)
    roi = _region(geom, safe.any(axis=0), nside, oversample, where)
    exact = _exact_healpix(geom, roi)
    counts_data = np.asarray(ds.counts.data, float).reshape(n_bins, -1)
    background_data = np.asarray(ds.background.data, float).reshape(n_bins, -1)
    if exact is not None:
        counts, background, mask = counts_data[:, exact], background_data[:, exact], safe[:, exact]
        outside, blur = float(counts_data.sum() - counts.sum()), 0.0
    else:
        sub = _sub_index(geom, roi, oversample)
        area = np.asarray(geom.solid_angle().to_value("sr"), dtype=float).ravel()
        counts, outside = _counts_at_centres(counts_data, geom, roi)
        background = _integrate(background_data, sub, area, roi)
        mask = np.all(safe[:, sub], axis=-1)
        blur = float(np.degrees(np.sqrt(np.median(area)))) / np.sqrt(12.0)

    label = name or "gammapy"
    response = _response(ds, geom, roi, where, edisp, label, blur, grid_step_deg, spectral_index, n_psf_components)
    meta = {"instrument": label, "file": where, "psf_oversample": int(psf_oversample),
            "conversion": "exact" if exact is not None else f"sub-pixels {oversample}x{oversample}",
            "counts_in_region": float(counts.sum()), "counts_outside_region": outside,
            "psf_blur_deg": float(blur)}  # fmt: skip
    names = response.bin_names
    return Dataset(label, HealpixMaps(counts, roi, names), HealpixMaps(background, roi, names), response,
                   mask=mask, meta=meta)  # fmt: skip


def _response(ds, geom, roi: HealpixROI, where: str, edisp: str, label: str, blur: float, grid_step_deg: float,
              spectral_index: float, n_psf_components: int):  # fmt: skip
    """The converted dataset's response: on a grid over the region, in the map's frame."""
    from astropy.coordinates import SkyCoord

    reco = ds.counts.geom.axes["energy"].edges.to_value("TeV")
    from ..response import SkyGrid
    from ..response.fermi import grid_response, interp_planes_loglog

    ra, dec = roi.radec()
    pix = SkyCoord(ra, dec, unit="deg", frame="icrs").transform_to(geom.frame)
    lon = (pix.spherical.lon.deg + 180.0) % 360.0 - 180.0 if geom.frame == "galactic" else pix.spherical.lon.deg
    lat = pix.spherical.lat.deg
    lon_axis = np.arange(np.floor(lon.min()) - grid_step_deg, lon.max() + 2 * grid_step_deg, grid_step_deg)
    lat_axis = np.arange(np.floor(lat.min()) - grid_step_deg, lat.max() + 2 * grid_step_deg, grid_step_deg)
    lat_axis = lat_axis[np.abs(lat_axis) < 90]
    grid = SkyGrid(geom.frame, lon_axis, lat_axis)
    centre = SkyCoord(np.median(lon), np.median(lat), unit="deg", frame=geom.frame)

    exposure_map = ds.exposure
    true_axis = exposure_map.geom.axes["energy_true"]

    def exposure_at(lon_deg, lat_deg, energy_tev):
        # the nearest pixel of the exposure map (its spatial pixels; nodes beyond the map take the edge
        # pixel) and log-log interpolation between its planes
        coords = SkyCoord(lon_deg, lat_deg, unit="deg", frame=geom.frame)
        e_geom = exposure_map.geom.to_image()
        x = np.asarray(_local_idx(e_geom, coords, clip=True))
        planes = np.asarray(exposure_map.quantity.to_value("cm2 s"), dtype=float).reshape(len(true_axis.center), -1)
        flat = x[0] if len(x) == 1 else np.ravel_multi_index((x[1], x[0]), e_geom.data_shape)
        return interp_planes_loglog(planes[:, flat], true_axis.center.to_value("TeV"), energy_tev)  # (m, n)

    kernel, true_edges = None, None
    if edisp == "dataset" and ds.edisp is not None:
        k = ds.edisp.get_edisp_kernel(position=centre) if _spatial(ds.edisp) else ds.edisp.get_edisp_kernel()
        kernel = np.asarray(k.pdf_matrix, dtype=float)  # (n_true, n_reco)
        true_edges = k.axes["energy_true"].edges.to_value("TeV")
        if not np.allclose(k.axes["energy"].edges.to_value("TeV"), reco, rtol=1e-5):
            raise GammapyDatasetError(f"{where}: the energy dispersion's reconstructed bins differ from the counts'")
        if not np.allclose(true_edges, true_axis.edges.to_value("TeV"), rtol=1e-5):
            raise GammapyDatasetError(f"{where}: the energy dispersion's true bins differ from the exposure's")
    return grid_response(exposure_at, grid, _psf_table(ds, centre, where), reco, true_edges, kernel,
                         spectral_index=spectral_index, n_components=n_psf_components, name=label,
                         meta={"source": where, "converted_from": "gammapy MapDataset"}, psf_blur_deg=blur)  # fmt: skip


def _spatial(edisp_map) -> bool:
    shape = edisp_map.edisp_map.geom.data_shape
    return shape[-1] > 1 or shape[-2] > 1
