"""Flux points (an SED) of one source from a fit, written in the format gammapy's ``FluxPoints.read`` opens.

The method is gammapy's ``FluxPointsEstimator``'s: in each energy band, only the analysis bins whose
reconstructed-energy range lies inside the band enter the likelihood, and the source's amplitude (its
whole spectrum, folded through the full response) is fitted with the spectral shape held at the best fit;
the other parameters are held at the best fit too, or refitted with ``reoptimize=True``. The band's
``norm`` is the fitted amplitude over the best fit's; ``dnde = norm * dnde_best(e_ref)`` at the band's
geometric centre. Errors are where the profile of ``-2 ln L`` rises by 1 (asymmetric; the symmetric
``norm_err`` is their mean), the upper limit where it rises by ``chi2.ppf(2 cl - 1, 1)`` (2.71 at 95 %),
``ts`` against a zero amplitude; a band with ``ts < ul_ts`` (4) is reported as an upper limit.

The table's columns are gammapy's (``e_ref``, ``e_min``, ``e_max``, ``dnde``, ``dnde_err``, ``dnde_errn``,
``dnde_errp``, ``dnde_ul``, ``ts``, ``sqrt_ts``, ``is_ul``, ``norm*``, ``counts``, ``npred``,
``npred_excess``) with ``SED_TYPE = "dnde"``, so ``gammapy.estimators.FluxPoints.read(path)`` opens it.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path

import numpy as np
from scipy import stats
from scipy.optimize import brentq

__all__ = ["FluxPoints", "FluxPointsError", "flux_points", "plot_sed"]

_DNDE_UNIT = "cm-2 s-1 TeV-1"
_TOL = 1e-3  # relative tolerance on band edges against the analysis bins' edges


class FluxPointsError(ValueError):
    """Flux points cannot be computed as asked (a band outside the data, bins without energies)."""


@dataclass(frozen=True)
class FluxPoints:
    """Flux points of one source: an astropy Table in gammapy's ``dnde`` SED layout (see the module)."""

    table: object
    source: str
    meta: dict = field(default_factory=dict)

    def write(self, path, overwrite: bool = True) -> Path:
        """Write the table: FITS (``.fits``, what ``FluxPoints.read`` opens) or ECSV (``.ecsv``)."""
        path = Path(path)
        t = self.table.copy()
        t.meta.update({"SED_TYPE": "dnde", "SOURCE": self.source})
        t.meta.update({k.upper()[:8]: v for k, v in self.meta.items() if isinstance(v, str | int | float | bool)})
        t.write(path, overwrite=overwrite, **({"format": "ascii.ecsv"} if path.suffix == ".ecsv" else {}))
        return path

    @classmethod
    def read(cls, path) -> FluxPoints:
        from astropy.table import Table

        t = Table.read(path)
        return cls(t, str(t.meta.get("SOURCE", "")), {})

    def to_gammapy(self):
        """The points as ``gammapy.estimators.FluxPoints`` (sed type ``dnde``)."""
        from gammapy.estimators import FluxPoints as GPFluxPoints

        t = self.table.copy()
        t.meta["SED_TYPE"] = "dnde"
        return GPFluxPoints.from_table(t, sed_type="dnde", format="gadf-sed")

    def plot(self, ax=None, energy_power: float = 2.0, label: str | None = None, **kwargs):
        """``E^energy_power dN/dE`` of the points with their errors, and arrows at the upper limits."""
        import matplotlib.pyplot as plt

        ax = ax or plt.gca()
        t = self.table
        e, ul = np.asarray(t["e_ref"]), np.asarray(t["is_ul"], bool)
        s = e**energy_power
        xerr = [e - np.asarray(t["e_min"]), np.asarray(t["e_max"]) - e]
        err = [np.asarray(t[c if c in t.colnames else "dnde_err"]) for c in ("dnde_errn", "dnde_errp")]
        yerr = [s * x for x in err]
        kw = {"fmt": kwargs.pop("marker", "o"), "ms": 4, **kwargs}
        h = ax.errorbar(e[~ul], s[~ul] * np.asarray(t["dnde"])[~ul], xerr=[x[~ul] for x in xerr],
                        yerr=[y[~ul] for y in yerr], label=label or f"{self.source} flux points", **kw)  # fmt: skip
        if ul.any():
            y = s[ul] * np.asarray(t["dnde_ul"])[ul]
            ax.errorbar(e[ul], y, xerr=[x[ul] for x in xerr], yerr=0.4 * y, uplims=True, fmt="none",
                        color=h[0].get_color())  # fmt: skip
        ax.set_xscale("log")
        ax.set_yscale("log")
        ax.set_xlabel("E [TeV]")
        ax.set_ylabel(f"E^{energy_power:g} dN/dE [TeV^{energy_power - 1:g} cm-2 s-1]")
        return ax

    def __str__(self) -> str:
        lines = [f"Flux points of {self.source!r} (dnde in {_DNDE_UNIT})"]
        for r in self.table:
            val = (
                f"< {r['dnde_ul']:.3e} (UL, TS {r['ts']:.1f})"
                if r["is_ul"]
                else f"{r['dnde']:.3e} -{r['dnde_errn']:.2e} +{r['dnde_errp']:.2e} (TS {r['ts']:.1f})"
            )
            lines.append(f"  {r['e_min']:8.3f}-{r['e_max']:<8.3f} TeV  {val}")
        return "\n".join(lines)


def _energy_edges_of(datasets) -> list:
    """Each dataset's (n_bins, 2) reconstructed-energy edges in TeV; a :class:`FluxPointsError` for bins
    without them."""
    out = []
    for ds in datasets:
        e = ds.response.energy_reco_edges_tev
        if e is None or not np.all(np.isfinite(e)):
            raise FluxPointsError(
                f"dataset {ds.name!r}: its analysis bins ({', '.join(ds.bin_names[:3])}, ...) have no "
                "reconstructed-energy ranges, which flux points need: bin the events in reconstructed energy "
                "(HAWC's NN/GP bins, KM2A energy bins), or leave this dataset out of the flux points"
            )
        out.append(np.asarray(e, float))
    return out


def _default_edges(edges_per_ds) -> np.ndarray:
    e = np.unique(np.round(np.concatenate([x.ravel() for x in edges_per_ds]), 10))
    return e


def _band_bins(edges, e_min, e_max) -> np.ndarray:
    return (edges[:, 0] >= e_min * (1 - _TOL)) & (edges[:, 1] <= e_max * (1 + _TOL))


def _scale_key(model, source: str) -> tuple[str, float]:
    """The parameter that scales ``source``'s flux (``source.amplitude`` or ``source.norm``) and its value."""
    names = [q.name for q in model.source(source).spectral.parameters]
    scale = "amplitude" if "amplitude" in names else "norm" if "norm" in names else None
    if scale is None:
        raise FluxPointsError(f"source {source!r}: its spectrum has neither 'amplitude' nor 'norm' to scale")
    key = f"{source}.{scale}"
    best = float(model.parameters()[key].value)
    if not best > 0:
        raise FluxPointsError(f"source {source!r}: its {scale} is {best}; flux points need a positive one")
    return key, best


def flux_points(result, datasets, source: str, energy_edges=None, reoptimize: bool = False, ul_ts: float = 4.0,
                cl: float = 0.95) -> FluxPoints:  # fmt: skip
    """Flux points of ``source`` in energy bands, from the fit ``result`` on ``datasets``.

    Parameters
    ----------
    result : FitResult
        A fit of a model that contains ``source`` to ``datasets``.
    datasets : Dataset or list of Dataset
        The fitted datasets; their analysis bins must have reconstructed-energy ranges.
    source : str
        The source's name.
    energy_edges : array-like or Quantity, optional
        Band edges (TeV for plain numbers). Default: the analysis bins' own edges. A band must contain
        at least one whole analysis bin of some dataset.
    reoptimize : bool
        Refit the other free parameters in each band (default: held at the best fit, gammapy's default).
    ul_ts : float
        Below this TS a band is reported as an upper limit (``is_ul``); the limit is computed for all.
    cl : float
        Confidence level of the upper limits (one-sided).

    Returns
    -------
    FluxPoints
    """
    from astropy.table import Table

    from ._units import to_value
    from .likelihood import Likelihood

    datasets = list(datasets) if isinstance(datasets, list | tuple) else [datasets]
    model = result.model
    src = model.source(source)
    key, best = _scale_key(model, source)
    edges_ds = _energy_edges_of(datasets)
    edges = (
        _default_edges(edges_ds) if energy_edges is None else np.asarray(to_value(energy_edges, "TeV", "energy_edges"))
    )
    edges = np.atleast_1d(np.asarray(edges, float))
    if edges.ndim != 1 or edges.size < 2 or np.any(np.diff(edges) <= 0) or edges[0] <= 0:
        raise FluxPointsError(f"energy_edges must be at least two increasing positive energies, got {edges}")
    lo = min(e[:, 0].min() for e in edges_ds)
    hi = max(e[:, 1].max() for e in edges_ds)
    bands = []
    for e_min, e_max in zip(edges[:-1], edges[1:], strict=True):
        sel = [_band_bins(e, e_min, e_max) for e in edges_ds]
        if not any(s.any() for s in sel):
            raise FluxPointsError(
                f"the band {e_min:g}-{e_max:g} TeV contains no whole analysis bin of the data (bins span "
                f"{lo:g}-{hi:g} TeV; bin edges {', '.join(f'{x:g}' for x in _default_edges(edges_ds))}): choose "
                "bands on those edges"
            )
        bands.append((e_min, e_max, sel))

    others = [k for k in result.free_keys if k != key and k.split(".")[0] != source]
    frozen = model.with_frozen(list(model.parameters()))
    base = frozen.with_frozen([key, *(others if reoptimize else [])], frozen=False)
    lk = Likelihood(base, datasets)
    delta_ul = float(stats.chi2.ppf(2 * cl - 1, 1))
    rows, per_ds = [], []
    for e_min, e_max, sel in bands:
        masks = [np.broadcast_to(s[:, None], a.mask.shape) for s, a in zip(sel, lk.arrays, strict=True)]
        fitted = _norm_fit(lk.with_mask(masks), base, key, best, reoptimize, delta_ul)
        rows.append((e_min, e_max, *fitted[:5]))
        per_ds.append(fitted[5:])

    r = np.array(rows)
    per_ds = np.array(per_ds)  # (n_bands, 3, n_datasets)
    e_ref = np.sqrt(r[:, 0] * r[:, 1])
    dnde_ref = np.asarray(src.spectral.evaluate(e_ref))
    norm, errn, errp, ul, ts = r[:, 2], r[:, 3], r[:, 4], r[:, 5], r[:, 6]
    t = Table()
    t["e_ref"], t["e_min"], t["e_max"] = e_ref, r[:, 0], r[:, 1]
    for c in ("e_ref", "e_min", "e_max"):
        t[c].unit = "TeV"
    for name, v in (("dnde", norm), ("dnde_err", 0.5 * (errn + errp)), ("dnde_errn", errn), ("dnde_errp", errp),
                    ("dnde_ul", ul)):  # fmt: skip
        t[name] = v * dnde_ref
        t[name].unit = _DNDE_UNIT
    t["ts"], t["sqrt_ts"] = ts, np.sign(norm) * np.sqrt(ts)
    t["is_ul"] = ts < ul_ts
    t["norm"], t["norm_err"], t["norm_errn"], t["norm_errp"], t["norm_ul"] = norm, 0.5 * (errn + errp), errn, errp, ul
    # per dataset, as gammapy's columns: (n_bands, n_datasets)
    t["counts"], t["npred"], t["npred_excess"] = per_ds[:, 0], per_ds[:, 1], per_ds[:, 2]
    meta = {"method": "reco-energy bands, amplitude fitted with the spectral shape fixed",
            "reoptimize": bool(reoptimize), "ul_cl": float(cl), "ul_ts": float(ul_ts),
            "datasets": ",".join(d.name for d in datasets)}  # fmt: skip
    return FluxPoints(t, source, meta)


def _norm_fit(lkb, base, key: str, best: float, reoptimize: bool, delta_ul: float) -> tuple:
    """Fit ``key`` (amplitude or norm) alone, or with the other free parameters of ``base``, on the
    likelihood ``lkb``; ``(norm, errn, errp, ul, ts, counts, npred, npred_excess)`` with ``norm`` relative
    to ``best`` and the last three per dataset."""
    from .fit import Fit

    fit = Fit(lkb).run(base, hesse=False)
    norm = float(fit.value(key)) / best  # the profile is taken in norm = amplitude / best (order 1)
    vec = {k: fit.value(k) for k in base.parameters()}

    def prof(n):
        if not reoptimize:
            return lkb.stat(lkb.vector({**vec, key: n * best})) - fit.stat
        m = fit.model.with_values({key: n * best}).with_frozen([key])
        return Fit(lkb).run(m, hesse=False).stat - fit.stat

    stat_min = min(0.0, prof(norm))  # guards against a minimum that MIGRAD left a hair high
    at_zero = prof(0.0) - stat_min
    ts = max(at_zero, 0.0)
    errn = norm if at_zero < 1 else norm - brentq(lambda n: prof(n) - stat_min - 1.0, 0.0, norm, xtol=1e-7)
    step = max(norm, 1.0) * 0.5
    errp = _rise(prof, norm, step, stat_min + 1.0) - norm
    ul = _rise(prof, norm, step, stat_min + delta_ul)
    w = [np.asarray(a.mask) for a in lkb.arrays]
    mu = lkb.npred(lkb.vector({**vec, key: norm * best}))
    mu0 = lkb.npred(lkb.vector({**vec, key: 0.0}))
    n_counts = [float(np.sum(m * np.asarray(a.counts))) for m, a in zip(w, lkb.arrays, strict=True)]
    npred = [float(np.sum(m * x)) for m, x in zip(w, mu, strict=True)]
    excess = [p - float(np.sum(m * x)) for p, m, x in zip(npred, w, mu0, strict=True)]
    return norm, errn, errp, ul, ts, n_counts, npred, excess


def _rise(prof, start: float, step: float, level: float) -> float:
    """The norm above ``start`` where ``prof`` reaches ``level`` (bracketed by doubling steps)."""
    a, b = start, start + step
    for _ in range(60):
        if prof(b) >= level:
            return float(brentq(lambda x: prof(x) - level, a, b, xtol=1e-7))
        a, b, step = b, b + 2 * step, 2 * step
    raise FluxPointsError("the likelihood profile does not rise: the band does not constrain the source's flux")


def plot_sed(
    points: FluxPoints, result=None, path=None, compare=None, title: str = "", compare_label: str = "comparison"
):
    """The SED: ``points``, the fitted spectrum of their source with its 1-sigma band (``result``), and
    other flux points to compare with (``compare``: a table in gammapy's dnde layout, e.g. published
    points, labelled ``compare_label``); saved to ``path`` when given. Returns the figure."""
    import matplotlib.pyplot as plt

    from .plotting import plot_spectrum

    fig, ax = plt.subplots(figsize=(6.4, 4.4))
    t = points.table
    lo, hi = float(np.min(t["e_min"])), float(np.max(t["e_max"]))
    if result is not None:
        plot_spectrum(result, points.source, energy_range_tev=(lo, hi), ax=ax, label=f"{points.source}: fit")
    points.plot(ax=ax, color="k")
    if compare is not None:
        other = compare if isinstance(compare, FluxPoints) else FluxPoints(compare, "compare")
        other.plot(ax=ax, color="tab:red", marker="s", mfc="none", label=compare_label)
    ax.legend(fontsize=8)
    ax.set_title(title or f"{points.source}: SED")
    fig.tight_layout()
    if path is not None:
        fig.savefig(path, dpi=120)
    return fig
