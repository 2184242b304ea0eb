"""Plots people look at: counts, residual significance and TS-like maps, fitted spectra."""

from __future__ import annotations

import healpy as hp
import numpy as np

from .maps import disc_sums

__all__ = ["gnomonic_image", "galactic_image", "plot_hpx", "plot_galactic", "residual_significance", "plot_residuals",
           "plot_spectrum", "use_file_backend"]  # fmt: skip


def use_file_backend() -> None:
    """Switch matplotlib to Agg for figures written to files, except inside IPython/Jupyter (where the
    inline backend both shows and saves them) or where the user chose a backend (``MPLBACKEND``)."""
    import os
    import sys

    import matplotlib

    if "MPLBACKEND" in os.environ or "IPython" in sys.modules:
        return
    matplotlib.use("Agg", force=False)


def gnomonic_image(values, roi, radius_deg: float | None = None, xsize: int = 300):
    """Rasterise ROI pixel values onto a gnomonic image around the ROI centre.

    Returns ``(image, extent)`` with extent in deg offsets ``(-r, r, -r, r)`` (RA offset on the sky, East left).
    """
    full = np.full(hp.nside2npix(roi.nside), np.nan)
    full[roi.pixels] = values
    ra, dec = roi.center()
    radius = radius_deg or roi.meta.get("radius_deg", 3.0)
    reso_arcmin = 2 * radius * 60 / xsize
    proj = hp.projector.GnomonicProj(rot=(ra, dec), xsize=xsize, ysize=xsize, reso=reso_arcmin)
    image = proj.projmap(full, lambda x, y, z: hp.vec2pix(roi.nside, x, y, z, nest=roi.nest))
    return image, (radius, -radius, -radius, radius)


def plot_hpx(values, roi, ax=None, label: str = "", cmap: str = "viridis", **kwargs):
    """Image of per-pixel values around the ROI centre on ``ax``."""
    import matplotlib.pyplot as plt

    ax = ax or plt.gca()
    image, extent = gnomonic_image(values, roi)
    im = ax.imshow(image, origin="lower", extent=extent, cmap=cmap, **kwargs)
    ax.set_xlabel("ΔRA cos(Dec) [deg]")
    ax.set_ylabel("ΔDec [deg]")
    ax.figure.colorbar(im, ax=ax, label=label)
    return im


def galactic_image(values, roi, l_range, b_range, step_deg: float = 0.02):
    """Rasterise ROI pixel values onto a Galactic (l, b) grid: ``(image, extent)``, NaN off the ROI; l increases
    to the left, as on the sky."""
    from astropy.coordinates import SkyCoord

    lon = np.arange(l_range[1], l_range[0], -step_deg)
    lat = np.arange(b_range[0], b_range[1], step_deg)
    ll, bb = np.meshgrid(lon, lat)
    c = SkyCoord(ll.ravel(), bb.ravel(), unit="deg", frame="galactic").icrs
    pix = hp.ang2pix(roi.nside, c.ra.deg, c.dec.deg, nest=roi.nest, lonlat=True)
    pos = np.clip(np.searchsorted(roi.pixels, pix), 0, roi.n_pix - 1)
    found = roi.pixels[pos] == pix
    image = np.where(found, np.asarray(values, float)[pos], np.nan).reshape(ll.shape)
    return image, (l_range[1], l_range[0], b_range[0], b_range[1])


def plot_galactic(values, roi, l_range, b_range, ax=None, label: str = "", cmap: str = "viridis", **kwargs):
    """Image of per-pixel values over a Galactic box on ``ax`` (:func:`galactic_image`)."""
    import matplotlib.pyplot as plt

    ax = ax or plt.gca()
    image, extent = galactic_image(values, roi, l_range, b_range)
    im = ax.imshow(image, origin="lower", extent=extent, cmap=cmap, **kwargs)
    ax.set_xlabel("l [deg]")
    ax.set_ylabel("b [deg]")
    ax.figure.colorbar(im, ax=ax, label=label, shrink=0.8)
    return im


def residual_significance(counts, npred, roi, radius_deg: float = 0.2) -> np.ndarray:
    """(N - μ)/sqrt(μ) of counts and prediction summed over bins and over a disc of ``radius_deg``
    around each pixel (a correlated residual map)."""
    n_sum, mu_sum = disc_sums(
        np.stack([np.asarray(counts).sum(axis=0), np.asarray(npred).sum(axis=0)]), roi, radius_deg
    )
    return (n_sum - mu_sum) / np.sqrt(np.maximum(mu_sum, 1e-12))


def plot_residuals(dataset, npred, path=None, radius_deg: float = 0.2, title: str = ""):
    """Counts, predicted counts and residual significance maps side by side (one figure)."""
    if path is not None:
        use_file_backend()
    import matplotlib.pyplot as plt

    fig, axes = plt.subplots(1, 3, figsize=(15, 4.4))
    counts = np.where(dataset.mask, dataset.counts.data, 0.0)
    mu = np.where(dataset.mask, npred, 0.0)
    plot_hpx(counts.sum(0), dataset.roi, axes[0], "counts")
    plot_hpx(mu.sum(0), dataset.roi, axes[1], "predicted counts")
    sig = residual_significance(counts, mu, dataset.roi, radius_deg)
    plot_hpx(sig, dataset.roi, axes[2], f"residual significance (r = {radius_deg}°)", cmap="RdBu_r", vmin=-5, vmax=5)
    axes[0].set_title(f"{dataset.name}: counts")
    axes[1].set_title("model")
    axes[2].set_title("residual")
    if title:
        fig.suptitle(title)
    fig.tight_layout()
    if path is not None:
        fig.savefig(path, dpi=110)
        plt.close(fig)
    return fig, sig


def plot_spectrum(
    result,
    source: str,
    energy_range_tev=(1.0, 300.0),
    ax=None,
    n_samples: int = 300,
    seed=0,
    energy_power: float = 2.0,
    label: str | None = None,
    **kwargs,
):
    """E^2 dN/dE of a fitted source with its 1-sigma band from the covariance (sampled, seeded)."""
    import matplotlib.pyplot as plt

    ax = ax or plt.gca()
    src = result.model.source(source)
    energy = np.geomspace(*energy_range_tev, 100)
    best = np.asarray(src.spectral.evaluate(energy))
    keys = [
        k for k in result.free_keys if k.startswith(f"{source}.") and k.split(".", 1)[1] in src.spectral.parameter_names
    ]
    idx = [result.free_keys.index(k) for k in keys]
    cov = result.covariance[np.ix_(idx, idx)]
    rng = np.random.default_rng(seed)
    draws = rng.multivariate_normal([result.value(k) for k in keys], cov, size=n_samples)
    base = {q.name: q.value for q in src.spectral.parameters}
    curves = []
    for d in draws:
        p = dict(base)
        p.update({k.split(".", 1)[1]: v for k, v in zip(keys, d, strict=False)})
        curves.append(np.asarray(src.spectral.dnde(energy, p)))
    lo, hi = np.percentile(curves, [16, 84], axis=0)
    scale = energy**energy_power
    line = ax.plot(energy, scale * best, label=label or f"{source} (skyfit)", **kwargs)[0]
    ax.fill_between(energy, scale * lo, scale * hi, color=line.get_color(), alpha=0.3)
    ax.set_xscale("log")
    ax.set_yscale("log")
    ax.set_xlabel("E [TeV]")
    ax.set_ylabel(f"E^{energy_power:g} dN/dE [TeV^{energy_power - 1:g} cm-2 s-1]")
    return ax
