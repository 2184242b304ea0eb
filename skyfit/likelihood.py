"""Predicted counts and the Poisson (Cash) likelihood: pure, jitted JAX functions, float64.

``stat = -2 ln L + const`` in its deviance form ``2 sum mask (mu - n + n ln(n / mu))``, which is
non-negative and keeps the float64 sum well conditioned.

The statistic is a sum of terms that compose: one :class:`CashTerm` per dataset, a
:class:`GaussianPriorTerm` for the priors, and any further ``-2 ln p`` terms a user adds (``terms``).
Inside, parameters are a pytree ``{component: {parameter: value}}`` (:meth:`Likelihood.params`); the flat
vector that Minuit sees (order of :meth:`Models.parameters`) is derived from it and back. What is compiled
depends only on the model's kinds of sources (:mod:`skyfit._shapes`): where each parameter sits in the
vector, the cut-outs and the priors are data, and likelihoods of the same kind of model share one set of
compiled functions.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import NamedTuple

import jax
import jax.numpy as jnp
import numpy as np
from scipy.special import xlogy

from ._shapes import DatasetPlan, Plan, build_plan, shared
from .dataset import Dataset
from .maps import unit_vectors
from .models import ModelError, Models
from .models.spatial import _galactic_to_icrs_matrix, source_unit_vector

jax.config.update("jax_enable_x64", True)

# value-only evaluations of a likelihood before its value-only function is compiled (Likelihood.value_maybe_grad)
VALUE_ONLY_AFTER = 24

__all__ = ["CashTerm", "DatasetArrays", "GaussianPriorTerm", "Likelihood", "cash_stat", "dataset_arrays", "npred"]


class DatasetArrays(NamedTuple):
    """What the likelihood needs of a :class:`Dataset`, as arrays (a JAX pytree)."""

    counts: jax.Array  # (n_bins, n_pix)
    background: jax.Array  # (n_bins, n_pix), masked pixels 0
    mask: jax.Array  # (n_bins, n_pix) 0/1
    pixel_vectors: jax.Array  # (n_pix, 3)
    pixel_area_sr: jax.Array  # ()
    energy_true_tev: jax.Array  # (n_true,)
    dec_nodes_deg: jax.Array  # (n_dec,)
    counts_matrix: jax.Array  # (n_dec, n_bins, n_true)
    psf_weights: jax.Array  # (n_bins, n_comp)
    psf_sigma_rad: jax.Array  # (n_bins, n_comp)
    stat_constant: jax.Array  # () 2 sum mask (n ln n - n)
    pixel_dec_weights: jax.Array  # (n_pix, n_dec) interpolation weights of each pixel over the response's nodes
    # a response on a sky grid (SkyGrid): its longitudes and latitudes, and the rotation from ICRS to its
    # frame; empty (0,) for a response tabulated in declination
    node_lon_deg: jax.Array  # (n_lon,) or (0,)
    node_lat_deg: jax.Array  # (n_lat,) or (0,)
    node_rotation: jax.Array  # (3, 3)
    # compact sources' PSF averaged over each pixel's nested sub-pixels (dataset.meta["psf_oversample"] per
    # side, default 1: the pixel centre) near each source (Likelihood._cores): (n_pix, oversample**2, 3)
    subpixel_vectors: jax.Array
    # map-cube templates (TemplateSpatialModel) folded with this dataset's response, in the model's order:
    # ((n_pairs, n_pix) counts, (n_pairs,) bin, (n_pairs,) true node) each (skyfit.io.template)
    templates: tuple = ()


def dataset_arrays(dataset: Dataset) -> DatasetArrays:
    r = dataset.response
    counts = dataset.counts.data
    mask = dataset.mask.astype(float)
    const = 2.0 * np.sum(mask * (xlogy(counts, counts) - counts))
    ra, dec = dataset.roi.radec()
    grid = r.sky_grid
    dec_weights = r.node_weights(ra, dec)
    if grid is None:
        lon_nodes, lat_nodes, rotation = np.zeros(0), np.zeros(0), np.eye(3)
    else:
        lon_nodes, lat_nodes = grid.lon_deg, grid.lat_deg
        rotation = _galactic_to_icrs_matrix().T if grid.frame == "galactic" else np.eye(3)
    return DatasetArrays(
        counts=jnp.asarray(counts),
        background=jnp.asarray(dataset.background_filled()),
        mask=jnp.asarray(mask),
        pixel_vectors=jnp.asarray(dataset.roi.unit_vectors()),
        pixel_area_sr=jnp.asarray(dataset.roi.pixel_area_sr),
        energy_true_tev=jnp.asarray(r.energy_true_tev),
        dec_nodes_deg=jnp.asarray(r.dec_nodes_deg, dtype=float),
        counts_matrix=jnp.asarray(r.counts_matrix),
        psf_weights=jnp.asarray(r.psf.weights),
        psf_sigma_rad=jnp.asarray(np.radians(r.psf.sigma_deg)),
        stat_constant=jnp.asarray(const),
        pixel_dec_weights=jnp.asarray(dec_weights),
        node_lon_deg=jnp.asarray(lon_nodes, dtype=float),
        node_lat_deg=jnp.asarray(lat_nodes, dtype=float),
        node_rotation=jnp.asarray(rotation, dtype=float),
        subpixel_vectors=jnp.asarray(_subpixel_vectors(dataset)),
    )


def _subpixel_vectors(dataset: Dataset) -> np.ndarray:
    """Unit vectors (n_pix, s, 3) where a compact source's PSF is evaluated in each pixel: its centre, or
    with ``dataset.meta["psf_oversample"] = k`` (a power of 2) the centres of its k x k nested sub-pixels,
    for a PSF whose core is narrower than the pixels (Fermi-LAT above 10 GeV at nside 1024)."""
    k = int(dataset.meta.get("psf_oversample", 1) or 1)
    if k == 1:
        return dataset.roi.unit_vectors()[:, None, :]
    from .reproject import subpixel_centers

    ra, dec = subpixel_centers(dataset.roi, k)
    return unit_vectors(ra.ravel(), dec.ravel()).reshape(*ra.shape, 3)


def cash_stat(npred, counts, mask, constant):
    """Deviance ``2 sum mask (mu - n ln mu) + constant`` (``constant = 2 sum mask (n ln n - n)``)."""
    mu = jnp.maximum(npred, 1e-300)
    return 2.0 * jnp.sum(mask * (mu - counts * jnp.log(mu))) + constant


def _dec_weights(dec_deg, dec_nodes):
    n = dec_nodes.shape[0]
    if n == 1:
        return jnp.ones(1)
    return jax.vmap(lambda e: jnp.interp(dec_deg, dec_nodes, e))(jnp.eye(n))


def _source_node_weights(vec, arrays: DatasetArrays):
    """Interpolation weights (n_nodes,) of a source at ICRS unit vector ``vec`` over the response's nodes:
    linear in declination, or bilinear on a sky grid (:class:`skyfit.response.SkyGrid`)."""
    if arrays.node_lon_deg.shape[0] == 0:
        dec = jnp.rad2deg(jnp.arcsin(jnp.clip(vec[2], -1.0, 1.0)))
        return _dec_weights(dec, arrays.dec_nodes_deg)
    v = arrays.node_rotation @ vec
    lon = jnp.rad2deg(jnp.arctan2(v[1], v[0]))
    lat = jnp.rad2deg(jnp.arcsin(jnp.clip(v[2], -1.0, 1.0)))
    mid = 0.5 * (arrays.node_lon_deg[0] + arrays.node_lon_deg[-1])
    lon = (lon - mid + 180.0) % 360.0 - 180.0 + mid
    wl, wb = _dec_weights(lon, arrays.node_lon_deg), _dec_weights(lat, arrays.node_lat_deg)
    return (wb[:, None] * wl[None, :]).reshape(-1)


def _npred_one(plan: DatasetPlan, x, arrays: DatasetArrays, data: dict):
    """Predicted counts (n_bins, n_pix) of one dataset at the padded flat vector ``x``: the dataset's
    plan (static) and data (parameter indices, cut-outs: :func:`skyfit._shapes.build_plan`)."""
    npred = jnp.zeros_like(arrays.counts)
    templates = iter(arrays.templates)
    for s, pidx in zip(plan.singles, data["singles"], strict=True):  # diffuse bands, templates: per pixel
        n_spatial = len(s.spatial.parameters)
        spatial_p = {q.name: x[pidx[j]] for j, q in enumerate(s.spatial.parameters)}
        spectral_p = {q.name: x[pidx[n_spatial + j]] for j, q in enumerate(s.spectral.parameters)}
        if s.spatial.precomputed:  # sum over (bin, true node) pairs of f(E_t) C_bt
            counts, bins, nodes = next(templates)
            f = s.spectral.dnde(arrays.energy_true_tev, spectral_p)
            npred = npred + jax.ops.segment_sum(f[nodes][:, None] * counts, bins, num_segments=npred.shape[0])
            continue
        per_dec = arrays.counts_matrix @ s.spectral.dnde(arrays.energy_true_tev, spectral_p)  # (n_dec, n_bins)
        expected = (arrays.pixel_dec_weights @ per_dec).T  # (n_bins, n_pix)
        kernel = s.spatial.kernel(spatial_p, arrays.pixel_vectors, arrays.pixel_area_sr, arrays.psf_weights,
                                  arrays.psf_sigma_rad, s.spatial.frame)  # fmt: skip
        npred = npred + expected * kernel
    for first, g in zip(plan.groups, data["groups"], strict=True):  # compact sources, vmapped over slots
        n_spatial = len(first.spatial.parameters)
        spatial_p = {q.name: x[g["pidx"][j]] for j, q in enumerate(first.spatial.parameters)}  # (slots,) each
        spectral_p = {q.name: x[g["pidx"][n_spatial + j]] for j, q in enumerate(first.spectral.parameters)}
        dnde = jax.vmap(lambda p, f=first: f.spectral.dnde(arrays.energy_true_tev, p))(spectral_p)  # (n, n_true)
        per_dec = jnp.einsum("dbt,nt->ndb", arrays.counts_matrix, dnde)
        frame = first.spatial.frame
        vec = jax.vmap(lambda lon, lat, fr=frame: source_unit_vector(lon, lat, fr))(
            spatial_p["lon_0"], spatial_p["lat_0"]
        )
        weights = jax.vmap(lambda v: _source_node_weights(v, arrays))(vec)  # (n, n_nodes)
        expected = jnp.einsum("nd,ndb->nb", weights, per_dec) * g["live"][:, None]  # (n, n_bins); padding 0

        def kernel(p, vectors, f=first):
            return f.spatial.kernel(p, vectors, arrays.pixel_area_sr, arrays.psf_weights, arrays.psf_sigma_rad,
                                    f.spatial.frame)  # fmt: skip

        def kernel_sub(p, vectors, inner=kernel):  # the PSF averaged over each pixel's sub-pixels
            shape = vectors.shape
            return inner(p, vectors.reshape(-1, 3)).reshape(-1, *shape[:2]).mean(axis=-1)

        n_bins = arrays.counts.shape[0]
        if "idx" not in g:  # every pixel at its centre (minus the core, when there is one)
            k = jax.vmap(kernel, in_axes=(0, None))(spatial_p, arrays.pixel_vectors)  # (n, n_bins, n_pix)
            if "mask" in g:
                k = k * g["mask"][:, None, :]
            npred = npred + jnp.einsum("nb,nbp->bp", expected, k)
        else:
            idx = g["idx"]
            k = jax.vmap(kernel)(spatial_p, arrays.pixel_vectors[idx])  # (n, n_bins, width)
            contrib = expected[:, :, None] * k * g["mask"][:, None, :]
            npred = npred.at[:, idx.reshape(-1)].add(jnp.transpose(contrib, (1, 0, 2)).reshape(n_bins, -1))
        if "core_idx" in g:  # the core's pixels: the mean over their sub-pixels
            core_idx = g["core_idx"]
            k = jax.vmap(kernel_sub)(spatial_p, arrays.subpixel_vectors[core_idx])  # (n, n_bins, width)
            contrib = expected[:, :, None] * k * g["core_mask"][:, None, :]
            npred = npred.at[:, core_idx.reshape(-1)].add(jnp.transpose(contrib, (1, 0, 2)).reshape(n_bins, -1))
    if plan.background is None:
        norm = 1.0
    elif plan.background == "global":
        norm = x[data["background"][0]]
    else:
        norm = x[data["background"]][:, None]
    return npred + norm * arrays.background


class _Functions(NamedTuple):
    """A plan's compiled functions of (padded vector, datasets' arrays, plan data)."""

    stat: object
    value_and_grad: object
    npred: object
    hessian: object


def _functions(plan: Plan, terms=None) -> _Functions:
    """The jitted statistic, its value and gradient, predicted counts and Hessian of ``plan``; ``terms``:
    a function of the padded vector adding the user's ``-2 ln p`` terms (then the functions are this
    likelihood's alone)."""

    def npred_all(x, arrays, data):
        return tuple(_npred_one(p, x, a, d) for p, a, d in zip(plan.datasets, arrays, data["datasets"], strict=True))

    def stat(x, arrays, data):
        total = 0.0
        for mu, a in zip(npred_all(x, arrays, data), arrays, strict=True):
            total = total + cash_stat(mu, a.counts, a.mask, a.stat_constant)
        prior = data["prior"]
        if prior is not None:
            total = total + jnp.sum(prior["w"] * ((x[prior["idx"]] - prior["mean"]) / prior["sigma"]) ** 2)
        if terms is not None:
            total = total + terms(x)
        return total

    # the Hessian reverse-over-reverse: the PSF kernel has a custom VJP, which forward mode cannot enter
    return _Functions(jax.jit(stat), jax.jit(jax.value_and_grad(stat)), jax.jit(npred_all),
                      jax.jit(jax.jacrev(jax.grad(stat))))  # fmt: skip


@dataclass(frozen=True)
class CashTerm:
    """The Cash statistic (-2 ln L, deviance form) of one dataset, a term of :meth:`Likelihood.stat`."""

    dataset: int  # index in the likelihood's datasets

    def __call__(self, like: Likelihood, params: dict, vector, arrays) -> jax.Array:
        a, i = arrays[self.dataset], self.dataset
        mu = _npred_one(like._plan.datasets[i], like._padded(vector), a, like._data["datasets"][i])
        return cash_stat(mu, a.counts, a.mask, a.stat_constant)


@dataclass(frozen=True, eq=False)
class GaussianPriorTerm:
    """Gaussian priors ``sum ((x - mean) / sigma)^2`` (``-2 ln p`` up to a constant) on the parameters at
    ``index`` of the flat vector."""

    index: np.ndarray
    mean: np.ndarray
    sigma: np.ndarray

    @classmethod
    def from_priors(cls, priors: dict, keys) -> GaussianPriorTerm:
        """From ``{parameter key: (mean, sigma)}``, checked against the model's parameter ``keys``."""
        priors = dict(priors or {})
        unknown = sorted(set(priors) - set(keys))
        if unknown:
            raise ModelError(f"priors on unknown parameters {unknown}; the model's parameters are {list(keys)[:8]} ...")
        items = sorted(priors.items())
        for k, (mu, sigma) in items:
            if not (np.isfinite(mu) and np.isfinite(sigma) and sigma > 0):
                raise ModelError(f"prior on {k}: mean {mu} and sigma {sigma} must be finite, sigma > 0")
        idx = np.array([keys.index(k) for k, _ in items], dtype=int)
        mu = np.array([float(v[0]) for _, v in items])
        sigma = np.array([float(v[1]) for _, v in items])
        return cls(idx, mu, sigma)

    def __call__(self, like: Likelihood, params: dict, vector, arrays) -> jax.Array:
        return jnp.sum(((vector[self.index] - self.mean) / self.sigma) ** 2)

    def value(self, vector) -> float:
        """The term at a flat vector, in NumPy float64."""
        x = np.asarray(vector, dtype=float)
        return float(np.sum(((x[self.index] - self.mean) / self.sigma) ** 2))


@dataclass(frozen=True, eq=False)
class Likelihood:
    """Joint Poisson likelihood of a :class:`Models` over several datasets.

    Calling :meth:`stat` with a flat parameter vector (order of ``model.parameters()``) returns
    ``-2 ln L`` (deviance form); :meth:`npred` gives the predicted counts per dataset.
    ``value_and_grad`` is jitted; the datasets' arrays are passed as arguments, not baked in.

    ``cutout_margin_deg``: when set, each source is evaluated only on the pixels within
    ``4 sqrt(sigma_psf,max^2 + extent^2) + extent + margin`` of its starting position (the widest PSF
    component of the dataset; the PSF mass beyond four of its widths is below 1e-3 of the source's
    counts), which makes many-source fits over large ROIs several times cheaper. A source must then
    stay within the margin of where it started: build a new Likelihood when sources move further.

    ``priors``: {parameter key: (mean, sigma)}, Gaussian priors added to the statistic as
    ``((x - mean) / sigma)^2`` (i.e. ``-2 ln p``), e.g. the neural-network proposer's positions and
    extensions (:mod:`skyfit.detect.prior`); None or {} for the plain likelihood.

    ``terms``: further ``-2 ln p`` terms, callables of the parameter pytree (:meth:`params`) returning a
    JAX scalar, added to the statistic (e.g. a constraint between two sources' indices); they are priors:
    :meth:`prior_stat` includes them.
    """

    model: Models
    datasets: tuple
    cutout_margin_deg: float | None = None
    priors: dict | None = None
    terms: tuple = ()

    def __post_init__(self):
        object.__setattr__(self, "datasets", tuple(self.datasets))
        names = [d.name for d in self.datasets]
        if len(set(names)) != len(names):
            raise ModelError(f"dataset names must be unique, got {names}")
        for b in self.model.backgrounds:
            if b.dataset not in names:
                raise ModelError(f"background norm for unknown dataset {b.dataset!r}; datasets: {names}")
            d = self.datasets[names.index(b.dataset)]
            if b.mode != "global" and len(b.parameters) != d.n_bins:
                raise ModelError(f"{b.name}: {len(b.parameters)} norms for {d.n_bins} analysis bins")
        self._check_sources_in_rois()
        keys = tuple(self.model.parameters())
        object.__setattr__(self, "keys", keys)
        object.__setattr__(self, "terms", tuple(self.terms))
        layout = tuple((c, tuple(q.name for q in params)) for c, params in self.model.components())
        object.__setattr__(self, "_layout", layout)
        prior = GaussianPriorTerm.from_priors(self.priors, keys)
        object.__setattr__(self, "_prior", prior)
        statistic = tuple(CashTerm(i) for i in range(len(self.datasets)))
        object.__setattr__(self, "statistic_terms", statistic + ((prior,) if prior.index.size else ()))
        object.__setattr__(self, "arrays", tuple(self._with_templates(d, dataset_arrays(d)) for d in self.datasets))
        object.__setattr__(self, "cutouts", self._cutouts())
        object.__setattr__(self, "cores", self._cores())
        plan, data = build_plan(self.model, self.datasets, keys, self.cutouts, self.cores, prior)
        object.__setattr__(self, "_plan", plan)
        object.__setattr__(self, "_data", data)
        if self.terms:  # the user's terms read this model's pytree: compiled for this likelihood alone
            n = len(keys)
            fns = _functions(plan, lambda x: sum(term(self.params(x[:n])) for term in self.terms))
        else:  # shared by every likelihood of the same plan (skyfit._shapes)
            fns = shared(plan.key(), lambda: _functions(plan))
        object.__setattr__(self, "_fns", fns)

    def _with_templates(self, dataset: Dataset, arrays: DatasetArrays) -> DatasetArrays:
        """``arrays`` with the model's map-cube templates folded with ``dataset``'s response."""
        from .io.template import template_counts

        templates = []
        for s in self.model.sources:
            if s.spatial.precomputed and s.applies_to(dataset.name):
                t = template_counts(s.spatial, dataset)
                templates.append((jnp.asarray(t.counts), jnp.asarray(t.bin_index), jnp.asarray(t.node_index)))
        return arrays._replace(templates=tuple(templates))

    def _check_sources_in_rois(self):
        """A source may lie outside an ROI (a neighbour whose emission spills in must be modelled, or the
        background and diffuse terms absorb it) as long as its PSF-convolved emission reaches the ROI:
        within three times the widest PSF component combined with its extent, plus the extent."""
        # pixel directions, sizes and PSF widths once per dataset, not once per source
        rois = [(d.roi.unit_vectors(), np.degrees(np.sqrt(d.roi.pixel_area_sr)),
                 float(np.max(d.response.psf.sigma_deg))) for d in self.datasets]  # fmt: skip
        for s in self.model.sources:
            if s.spatial.per_pixel_exposure:  # a diffuse band: no position to check
                continue
            ra, dec = s.spatial.position_icrs()
            ext = s.spatial.extent_deg()
            source_vector = unit_vectors(ra, dec)
            reaches = any(
                np.degrees(np.arccos(np.clip(vectors @ source_vector, -1, 1))).min()
                <= max(pix_size, 3 * np.hypot(psf_max, ext) + ext)
                for (vectors, pix_size, psf_max), d in zip(rois, self.datasets, strict=True)
                if s.applies_to(d.name)
            )
            if not reaches:
                raise ModelError(
                    f"source {s.name!r} at (ra, dec) = ({ra:.3f}, {dec:.3f}) deg is too far from every "
                    "dataset's ROI for its emission to reach it: move it closer, enlarge the ROI, or remove it"
                )

    def _cutouts(self) -> dict:
        """``{(dataset index, source name): pixel indices}`` for sources evaluated on a cut-out."""
        if self.cutout_margin_deg is None:
            return {}
        out = {}
        for i, d in enumerate(self.datasets):
            vectors = d.roi.unit_vectors()
            psf_max = float(np.max(d.response.psf.sigma_deg))
            for s in self.model.sources:
                if s.spatial.per_pixel_exposure or not s.applies_to(d.name):
                    continue
                ext = s.spatial.extent_deg()
                radius = 4.0 * np.hypot(psf_max, ext) + ext + self.cutout_margin_deg
                ra, dec = s.spatial.position_icrs()
                idx = np.flatnonzero(vectors @ unit_vectors(ra, dec) >= np.cos(np.radians(min(radius, 180.0))))
                if idx.size < 0.7 * d.roi.n_pix:  # otherwise the gather costs more than it saves
                    out[(i, s.name)] = idx
        return out

    def _cores(self) -> dict:
        """``{(dataset index, source name): pixel indices}`` where a compact source's PSF is averaged over
        sub-pixels (datasets with ``meta["psf_oversample"] > 1``); elsewhere the pixel centre is used.

        The core is the disc of radius ``4 sigma_core + extent + pixel + min(margin, 0.1 deg)`` around the
        starting position, ``sigma_core`` the widest PSF component narrower than three pixels once combined
        with the source's extent (none: no core, an extended source smooth on the pixel scale): beyond four
        of its widths such a component is below 3e-4 of its peak, and the wider components vary little
        across a pixel (a centre value is within ``h^2 / (24 sigma^2)`` of the pixel's mean, < 0.5 % for
        sigma > 3 h). On the Fermi-LAT Galactic centre (nside 1024, 4 x 4 sub-pixels, 8 sources) the
        predicted counts differ from sub-pixels everywhere by 5e-5 of the sources' total (sum of absolute
        differences) and -2 ln L by 0.005, at a quarter of the cost. A source that moves further than the
        margin from where it started is still evaluated, on pixel centres near it; build a new Likelihood
        after large moves.
        """
        out = {}
        margin = 0.5 if self.cutout_margin_deg is None else self.cutout_margin_deg
        for i, (d, a) in enumerate(zip(self.datasets, self.arrays, strict=True)):
            if a.subpixel_vectors.shape[1] == 1:
                continue
            vectors = d.roi.unit_vectors()
            h = float(np.degrees(np.sqrt(d.roi.pixel_area_sr)))
            sigma = np.asarray(d.response.psf.sigma_deg, dtype=float)
            for s in self.model.sources:
                if s.spatial.per_pixel_exposure or not s.applies_to(d.name):
                    continue
                ext = s.spatial.extent_deg()
                narrow = sigma[np.hypot(sigma, ext) < 3 * h]  # an extended source smooths the PSF's core
                if not narrow.size:
                    out[(i, s.name)] = np.zeros(0, dtype=np.int64)
                    continue
                radius = 4 * np.hypot(narrow.max(), ext) + ext + h + min(margin, 0.1)
                ra, dec = s.spatial.position_icrs()
                out[(i, s.name)] = np.flatnonzero(vectors @ unit_vectors(ra, dec) >= np.cos(np.radians(radius)))
        return out

    # --- pure functions of the parameters ----------------------------------------------------
    def params(self, vector) -> dict:
        """The parameter pytree ``{component: {parameter: value}}`` of a flat vector (order of :attr:`keys`)."""
        tree, i = {}, 0
        for component, names in self._layout:
            tree[component] = {name: vector[i + j] for j, name in enumerate(names)}
            i += len(names)
        return tree

    def vector_of(self, params: dict) -> jax.Array:
        """The flat vector (order of :attr:`keys`) of a parameter pytree: the inverse of :meth:`params`."""
        return jnp.stack([jnp.asarray(params[c][n], dtype=float) for c, names in self._layout for n in names])

    def _padded(self, vector):
        """The flat vector padded with zeros to the plan's length (nothing reads the padding)."""
        if isinstance(vector, jax.core.Tracer):
            x = jnp.asarray(vector, dtype=float)
            return jnp.pad(x, (0, self._plan.size - x.shape[0]))
        x = np.zeros(self._plan.size)
        x[: len(self.keys)] = np.asarray(vector, dtype=float)
        return x

    # --- user-facing ---------------------------------------------------------------------------
    def with_counts(self, counts_per_dataset) -> Likelihood:
        """The same likelihood for other counts (e.g. simulated realisations), reusing the compiled
        functions: no re-tracing as long as shapes are unchanged."""
        new = object.__new__(Likelihood)
        new.__dict__.update(self.__dict__)
        arrays = []
        for a, counts in zip(self.arrays, counts_per_dataset, strict=True):
            counts = np.asarray(counts, dtype=float)
            if counts.shape != a.counts.shape:
                raise ValueError(f"counts of shape {counts.shape} do not match the dataset's {a.counts.shape}")
            mask = np.asarray(a.mask)
            const = 2.0 * np.sum(mask * (xlogy(counts, counts) - counts))
            arrays.append(a._replace(counts=jnp.asarray(counts), stat_constant=jnp.asarray(const)))
        object.__setattr__(new, "arrays", tuple(arrays))
        return new

    def with_mask(self, masks_per_dataset) -> Likelihood:
        """The same likelihood on fewer pixels and bins: ``masks_per_dataset`` (n_bins, n_pix) booleans,
        combined with each dataset's own mask (e.g. one energy band's bins, for flux points); reuses the
        compiled functions."""
        new = object.__new__(Likelihood)
        new.__dict__.update(self.__dict__)
        arrays = []
        for a, m in zip(self.arrays, masks_per_dataset, strict=True):
            m = np.broadcast_to(np.asarray(m, bool), a.mask.shape)
            mask = np.asarray(a.mask) * m
            counts = np.asarray(a.counts)
            const = 2.0 * np.sum(mask * (xlogy(counts, counts) - counts))
            arrays.append(a._replace(mask=jnp.asarray(mask), stat_constant=jnp.asarray(const)))
        object.__setattr__(new, "arrays", tuple(arrays))
        return new

    def vector(self, values: dict | None = None) -> jax.Array:
        """Flat parameter vector from the model's values, updated by ``values`` (keys ``comp.name``)."""
        current = self.model.values()
        if values:
            current.update(values)
        return jnp.asarray([current[k] for k in self.keys], dtype=float)

    def stat(self, vector=None) -> float:
        """-2 ln L (deviance form) at ``vector`` (default: the model's values)."""
        return self.value_maybe_grad(vector)[0]

    def value_maybe_grad(self, vector=None) -> tuple[float, np.ndarray | None]:
        """``(stat, gradient or None)`` at ``vector``: the first ``VALUE_ONLY_AFTER`` calls of a likelihood
        evaluate the value and gradient (which every fit compiles anyway) and return both; later ones the
        statistic's own compiled function (about 0.6 of the cost per call), compiled then. A fit that needs
        few values (the HAWC Crab's: 9) never pays that second compilation (0.3 s of its 1.1 s cold)."""
        x = self._padded(self.vector() if vector is None else vector)
        calls = self.__dict__.get("_value_calls", 0) + 1
        object.__setattr__(self, "_value_calls", calls)
        if calls > VALUE_ONLY_AFTER:
            return float(self._fns.stat(x, self.arrays, self._data)), None
        v, g = self._fns.value_and_grad(x, self.arrays, self._data)
        return float(v), np.asarray(g)[: len(self.keys)]

    def prior_stat(self, vector=None) -> float:
        """The Gaussian prior terms alone in :meth:`stat` at ``vector`` (0 without priors): subtracted,
        they leave the likelihood, which likelihood-ratio tests compare."""
        x = self.vector() if vector is None else jnp.asarray(vector, dtype=float)
        total = self._prior.value(x) if self._prior.index.size else 0.0
        if self.terms:
            params = self.params(x)
            total += float(sum(term(params) for term in self.terms))
        return total

    def value_and_grad(self, vector):
        v, g = self._fns.value_and_grad(self._padded(vector), self.arrays, self._data)
        return v, g[: len(self.keys)]

    def hessian(self, vector) -> np.ndarray:
        """Exact Hessian of :meth:`stat` (all parameters, frozen included), compiled on first use."""
        n = len(self.keys)
        return np.asarray(self._fns.hessian(self._padded(vector), self.arrays, self._data))[:n, :n]

    def npred(self, vector=None) -> list:
        """Predicted counts (n_bins, n_pix) per dataset, as NumPy arrays."""
        out = self._fns.npred(self._padded(self.vector() if vector is None else vector), self.arrays, self._data)
        return [np.asarray(x) for x in out]


def npred(model: Models, dataset: Dataset) -> np.ndarray:
    """Predicted counts (n_bins, n_pix) of ``model`` in ``dataset``."""
    return Likelihood(model.for_datasets([dataset.name]), [dataset]).npred()[0]
