"""`skyfit catalog`: tile a region into overlapping ROIs, detect and fit each, merge, write the catalogue.

Tiling and ownership: the region is cut along longitude into tiles of ``tile_deg``; each ROI is its tile
grown by ``overlap_deg`` on every side (sources near a tile edge are fitted whole, with their
neighbours). A component belongs to the ROI whose tile (not grown) contains its fitted position, so
every position has exactly one owner and overlapping ROIs never list a source twice.

Each ROI is an independent task, run in-process (default) or on ``dask.distributed`` (``scheduler=
"local"`` starts a LocalCluster, an address connects to a running scheduler). A finished ROI is written
to ``<out>/rois/roi_<i>.json`` (atomically, with a fingerprint of the configuration); a rerun skips the
ROIs already done with the same fingerprint, so an interrupted run resumes without losing work. The
catalogue files are written (atomically) only once every ROI is done.
"""

from __future__ import annotations

import functools
import hashlib
import json
import os
import time
from dataclasses import asdict, dataclass, field
from pathlib import Path

import numpy as np

from .._tasks import Checkpoints, Task, run_tasks, write_atomic
from ..events import _json_default
from ..skies import CatalogError, Region, simulate_plane
from ._output import _write_catalog, catalog_table, cross_match, merge_components, owned_components
from ._roi import DetectionConfig, component_table, detect_and_fit

__all__ = ["CatalogConfig", "run", "tiles", "BUILTIN_REGION"]

BUILTIN_REGION = "35,45,-3,3"  # 10 x 6 deg around l = 40 deg: 13 1LHAASO components, ~75 s here


@dataclass(frozen=True)
class CatalogConfig:
    """Everything that determines a catalogue run (recorded beside the output)."""

    # the region to catalogue; None: the built-in field for simulated skies, the data's footprint for datasets
    region: str | None = None
    livetime_days: float = 365.0
    nside: int = 512
    seed: int = 0
    # the data: "1lhaaso" (simulated 1LHAASO sky), "background" (null), or a random sky drawn with ``seed``
    # from the NN prior's training population ("synthetic") or from one it never saw ("wide")
    simulate: str = "1lhaaso"
    detectors: tuple = ("WCDA", "KM2A")
    tile_deg: float = 10.0
    overlap_deg: float = 1.5
    ts_keep: float = 37.0  # catalogue threshold [1LHAASO]
    merge_deg: float = 0.5  # WCDA and KM2A components closer than this (+ their r39) form one source
    detection: dict = field(default_factory=dict)  # DetectionConfig overrides
    proposer: str = "tsmap"  # what seeds components: "tsmap", "nn" (the neural-network prior) or "both"
    prior_weights: str | None = None  # the prior network's file (None: the weights shipped with skyfit)
    # dataset files (Dataset.write, `skyfit bin`) to catalogue instead of a simulated sky
    datasets: tuple = ()
    # a sky of the user's (Models YAML: sources with positions, shapes, spectra; a source restricted to
    # one detector with `datasets: [WCDA]`) simulated with the diffuse band and the cosmic-ray background
    sky: str | None = None

    def __post_init__(self):
        object.__setattr__(self, "datasets", tuple(str(p) for p in self.datasets))
        if self.sky is not None:
            if self.simulate not in ("1lhaaso", "sky") or self.datasets:
                raise CatalogError("a sky to simulate (sky=...) excludes datasets and other simulations: give one")
            if not Path(self.sky).is_file():
                raise CatalogError(f"sky model file {self.sky} does not exist (a Models YAML, e.g. "
                                   "best_fit_model.yaml of `skyfit fit`)")  # fmt: skip
            object.__setattr__(self, "sky", str(self.sky))
            object.__setattr__(self, "simulate", "sky")
        elif self.simulate == "sky":
            raise CatalogError("simulate='sky' needs the sky model file: sky=PATH (--simulate-sky PATH)")
        if self.datasets and self.simulate != "1lhaaso":
            raise CatalogError(f"simulate={self.simulate!r} makes no sense with datasets: give one or the other")
        if self.region is None:
            object.__setattr__(self, "region", footprint(self) if self.datasets else BUILTIN_REGION)
        Region.parse(self.region)
        if self.simulate not in SIMULATIONS:
            raise CatalogError(f"simulate must be one of {SIMULATIONS}, got {self.simulate!r}")
        if self.proposer not in ("tsmap", "nn", "both"):
            raise CatalogError(f"proposer must be 'tsmap', 'nn' or 'both', got {self.proposer!r}")
        if {"proposer", "prior_weights"} & set(self.detection):
            raise CatalogError("set proposer and prior_weights as catalogue settings, not under detection")
        if not set(self.detectors) <= {"WCDA", "KM2A"} or not self.detectors:
            raise CatalogError(f"detectors must be a non-empty subset of WCDA, KM2A, got {self.detectors}")
        if not (self.tile_deg > 0 and self.overlap_deg >= 0 and self.livetime_days > 0):
            raise CatalogError("tile_deg and livetime_days must be positive and overlap_deg >= 0")
        unknown = set(self.detection) - set(DetectionConfig.__dataclass_fields__)
        if unknown:
            raise CatalogError(f"unknown detection settings {sorted(unknown)}; known: "
                               f"{sorted(DetectionConfig.__dataclass_fields__)}")  # fmt: skip
        object.__setattr__(self, "detectors", tuple(self.detectors))

    def fingerprint(self) -> str:
        """Hash of the configuration and of the code that turns it into an ROI's result, so that a
        checkpoint written by another version of that code is not reused."""
        payload = json.dumps(asdict(self), sort_keys=True, default=str) + _code_fingerprint()
        if self.proposer != "tsmap":  # the network's weights decide the result too
            payload += _file_hash(self.prior_weights)
            if self.detection.get("multiplicity"):  # and the multiplicity network's
                from ..detect.multiplicity import SHIPPED_MULTIPLICITY

                payload += _file_hash(self.detection.get("multiplicity_weights") or SHIPPED_MULTIPLICITY)
        for path in self.datasets + ((self.sky,) if self.sky else ()):  # and the data or the sky: another
            payload += _file_hash(path, missing_ok=False)  # file under the same name is another catalogue
        return hashlib.sha256(payload.encode()).hexdigest()[:16]


# the code that decides an ROI's components: every module of the package except the command line, the
# air-shower simulation and the event-level gamma/hadron separation (which a catalogue never runs)
_CODE_EXCLUDED = ("cli", "showers", "ghsep")
SIMULATIONS = ("1lhaaso", "background", "synthetic", "wide", "sky")


def _file_hash(path, missing_ok: bool = True) -> str:
    from ..detect.prior import SHIPPED_WEIGHTS

    p = Path(path) if path else SHIPPED_WEIGHTS
    if not p.is_file():
        if missing_ok:
            return "missing"
        raise CatalogError(f"dataset file {p} does not exist")
    h = hashlib.sha256()
    with open(p, "rb") as f:
        for block in iter(lambda: f.read(1 << 24), b""):
            h.update(block)
    return h.hexdigest()[:16]


def load_datasets(paths) -> list:
    """The datasets of ``paths`` (dataset files), checked to be fit for a catalogue: distinct names, and
    counts in each (a dataset with none is refused, never fitted)."""
    from ..dataset import Dataset, require_counts

    datasets = []
    for p in paths:
        ds = Dataset.read(p)
        require_counts(ds, str(p))
        datasets.append(ds)
    names = [d.name for d in datasets]
    dup = sorted({n for n in names if names.count(n) > 1})
    if dup:
        raise CatalogError(f"datasets {list(paths)} share the names {dup}: each detector's file needs its own name "
                           "(Dataset.read(path, name=...) and write it again)")  # fmt: skip
    return datasets


def footprint(cfg: CatalogConfig) -> str:
    """The Galactic box (``"l_min,l_max,b_min,b_max"``) inside every dataset's pixels, shrunk by the ROI
    margin ``overlap_deg`` so that the ROIs around its tiles stay on the data."""
    from astropy.coordinates import SkyCoord

    boxes = []
    for ds in _file_datasets(cfg.datasets):
        ra, dec = ds.roi.radec()
        g = SkyCoord(ra, dec, unit="deg").galactic
        l_deg, b_deg = g.l.deg, g.b.deg
        center = np.degrees(np.angle(np.mean(np.exp(1j * np.radians(l_deg)))))
        l_deg = center + (l_deg - center + 180.0) % 360.0 - 180.0
        boxes.append((l_deg.min(), l_deg.max(), b_deg.min(), b_deg.max()))
    b = np.array(boxes)
    # one longitude convention for all: shift each box next to the first
    b[:, :2] += 360.0 * np.round((b[0, 0] - b[:, 0]) / 360.0)[:, None]
    lo, hi = b[:, 0].max() + cfg.overlap_deg, b[:, 1].min() - cfg.overlap_deg
    b_lo, b_hi = b[:, 2].max() + cfg.overlap_deg, b[:, 3].min() - cfg.overlap_deg
    if not (hi > lo and b_hi > b_lo):
        raise CatalogError(
            f"the datasets {list(cfg.datasets)} have no common footprint wider than twice the ROI margin "
            f"({cfg.overlap_deg:g} deg): give a --region inside the data or a smaller --overlap-deg"
        )
    return f"{lo:.4f},{hi:.4f},{b_lo:.4f},{b_hi:.4f}"


_FILE_CACHE: dict = {}


def _file_datasets(paths) -> list:
    key = tuple(str(p) for p in paths)
    if key not in _FILE_CACHE:
        _FILE_CACHE.clear()
        _FILE_CACHE[key] = load_datasets(key)
    return _FILE_CACHE[key]


def _region_datasets(cfg: CatalogConfig, region: Region) -> list:
    """The whole region's datasets: the files of ``cfg.datasets``, or the simulated sky."""
    if cfg.datasets:
        return _file_datasets(cfg.datasets)
    return _simulated_region(cfg, region)[0]


@functools.lru_cache(maxsize=1)
def _code_fingerprint() -> str:
    root = Path(__file__).resolve().parents[1]
    h = hashlib.sha256()
    for path in sorted(root.rglob("*.py")):
        rel = path.relative_to(root).as_posix()
        if rel.split("/")[0].removesuffix(".py") in _CODE_EXCLUDED:
            continue
        h.update(rel.encode())
        h.update(path.read_bytes())
    return h.hexdigest()[:16]


def tiles(region: Region, tile_deg: float) -> list[Region]:
    """The region cut along longitude into near-equal tiles no wider than ``tile_deg``."""
    n = max(1, int(np.ceil(region.width / tile_deg - 1e-9)))
    edges = np.linspace(region.l_min, region.l_max, n + 1)
    return [Region(a, b, region.b_min, region.b_max) for a, b in zip(edges[:-1], edges[1:], strict=True)]


def _datasets_for(cfg: CatalogConfig, roi_region: Region):
    """The data of one ROI. Simulated data come from the whole region with one seed, so overlapping
    ROIs see the same counts; the ROI's pixels are then cut out."""
    from ..dataset import Dataset
    from ..maps import HealpixMaps

    region = Region.parse(cfg.region)
    full = _region_datasets(cfg, region)
    out = []
    for ds in full:
        roi = roi_region.roi(ds.roi.nside, nest=ds.roi.nest)
        idx = ds.roi.index_of(roi.pixels)
        keep = idx >= 0
        if not keep.any():
            raise CatalogError(f"ROI {roi_region} holds no pixel of dataset {ds.name!r}: it lies outside the data")
        sub_roi = type(roi)(roi.nside, roi.nest, roi.pixels[keep], meta={**ds.roi.meta, **roi.meta})
        sel = idx[keep]
        counts = HealpixMaps(ds.counts.data[:, sel], sub_roi, ds.bin_names)
        bkg = HealpixMaps(ds.background.data[:, sel], sub_roi, ds.bin_names)
        out.append(Dataset(ds.name, counts, bkg, ds.response, None if ds.mask is None else ds.mask[:, sel], ds.meta))
    return out


_CACHE: dict = {}


def _simulated_region(cfg: CatalogConfig, region: Region):
    key = (cfg.region, cfg.livetime_days, cfg.nside, cfg.seed, cfg.simulate, cfg.detectors, cfg.overlap_deg,
           cfg.sky, _file_hash(cfg.sky) if cfg.sky else None)  # fmt: skip
    if key not in _CACHE:
        _CACHE.clear()
        catalog = None
        if cfg.simulate == "sky":
            from ..models import Models

            try:
                catalog = Models.from_yaml(Path(cfg.sky))
            except (ValueError, KeyError, TypeError, OSError) as exc:
                raise CatalogError(f"sky model file {cfg.sky} could not be read as a Models YAML: {exc}") from None
        if cfg.simulate in ("synthetic", "wide"):  # a random sky from a population (its own seed stream)
            from ..detect._skies import draw_sky, sky_model

            population = "1lhaaso" if cfg.simulate == "synthetic" else "wide"
            sources = draw_sky(region, [cfg.seed, 99], population, margin_deg=cfg.overlap_deg)
            catalog = sky_model(sources, prefix="true")
        _CACHE[key] = simulate_plane(region, cfg.livetime_days, cfg.nside, cfg.seed, margin_deg=cfg.overlap_deg,
                                     catalog=catalog, with_sources=cfg.simulate != "background",
                                     detectors=cfg.detectors)  # fmt: skip
    return _CACHE[key]


def _roi_task(index: int, cfg_dict: dict, log=None) -> dict:
    """Detect and fit one ROI; return its record (the runner writes it as the ROI's checkpoint; runs in a
    worker process too). ``log`` receives the detection's steps (in-process runs show them on the
    progress bar)."""
    cfg = CatalogConfig(**{**cfg_dict, "detectors": tuple(cfg_dict["detectors"])})
    region = Region.parse(cfg.region)
    tile = tiles(region, cfg.tile_deg)[index]
    roi_region = tile.grown(cfg.overlap_deg)
    t0 = time.perf_counter()
    datasets = _datasets_for(cfg, roi_region)
    det_cfg = DetectionConfig(**{**cfg.detection, "proposer": cfg.proposer, "prior_weights": cfg.prior_weights})
    out = detect_and_fit(datasets, det_cfg, log=log or (lambda *a: None))
    rows = component_table(out)
    from astropy.coordinates import SkyCoord

    from ._roi import outside_deg

    by_name = {d.name: d for d in datasets}

    for r in rows:
        g = SkyCoord(r["ra"], r["dec"], unit="deg").galactic
        r["l"], r["b"] = float(g.l.deg), float(g.b.deg)
        r["owned"] = bool(tile.contains(r["l"], r["b"]))
        # fitted on this ROI's data, or beyond it (a neighbour's source modelled for its spill-over only)
        r["in_roi"] = outside_deg(by_name[r["dataset"]].roi, r["ra"], r["dec"]) == 0.0
    model = out["result"].model
    band = [s for s in model.sources if s.name == "diffuse"]
    norms = {b.dataset: float(model.values()[f"{b.name}.norm"]) for b in model.backgrounds if b.mode == "global"}
    record = {
        "index": index,
        "tile": tile.as_tuple(),
        "roi": roi_region.as_tuple(),
        "fingerprint": cfg.fingerprint(),
        "components": rows,
        # the diffuse band's normalisation (0 without the band: DetectionConfig.diffuse = "background_norm")
        "diffuse_amplitude": {q.name: q.value for q in band[0].spectral.parameters}["amplitude"] if band else 0.0,
        "background_norms": norms,
        "diffuse_amplitude_err": float(out["result"].errors.get("diffuse.amplitude", float("nan"))),
        "fits": out["fits"],
        "fits_detect": out["fits_detect"],
        "stat": out["result"].stat,
        "valid": out["result"].valid,
        "messages": list(out["result"].messages),
        "history": out["history"],
        "wall_s": time.perf_counter() - t0,
    }
    # the next ROI has other pixels, so nothing compiled here is used again; freed, since a process that
    # keeps every compiled likelihood runs out of memory maps after a few hundred ROIs ("LLVM compilation
    # error: Cannot allocate memory" with free RAM to spare; benchmarks/crowded_fields.py, issue #30)
    import jax

    jax.clear_caches()
    return record


def _write_json(f, obj) -> None:
    f.write(json.dumps(obj, indent=1, default=_json_default).encode())


def _write_json_atomic(path: Path, obj) -> None:
    write_atomic(path, lambda f: _write_json(f, obj))


def _load_checkpoint(path: Path, fingerprint: str) -> dict | None:
    if not path.exists():
        return None
    try:
        rec = json.loads(path.read_text())
    except (OSError, json.JSONDecodeError):
        return None  # a torn write from an older run: redo this ROI
    return rec if rec.get("fingerprint") == fingerprint else None


def run(config: CatalogConfig | None = None, out_dir="skyfit-catalog", scheduler=None, progress: bool = True,
        plots: bool = True, log=print) -> dict:  # fmt: skip
    """Make the catalogue of ``config.region``; returns a summary dict (and writes ``out_dir``).

    Writes ``catalog.fits``, ``catalog.ecsv``, ``catalog.reg`` (DS9), ``run.json`` (configuration,
    versions, seeds, timings), ``config.yaml`` (input to ``skyfit catalog --config``), ``rois/``
    (checkpoints) and, with ``plots``, significance and residual maps as PNG and FITS (``maps_*.fits``).
    """
    cfg = config or CatalogConfig()
    if cfg.proposer != "tsmap":  # refuse a missing or bad network now, not as a silent TS-map run later
        from ..detect.prior import PriorError, load_prior

        try:
            load_prior(cfg.prior_weights)
        except PriorError as exc:
            raise CatalogError(f"proposer {cfg.proposer!r} needs the prior network: {exc}") from None
    out = Path(out_dir)
    out.mkdir(parents=True, exist_ok=True)
    region = Region.parse(cfg.region)
    tl = tiles(region, cfg.tile_deg)
    fp = cfg.fingerprint()
    t0 = time.perf_counter()
    cfg_dict = asdict(cfg)
    tasks = [Task(_roi_task, (i, cfg_dict), f"roi_{i:03d}.json", f"ROI {i + 1}", "log") for i in range(len(tl))]
    checkpoints = Checkpoints(out / "rois", _write_json, functools.partial(_load_checkpoint, fingerprint=fp))
    done = run_tasks(tasks, checkpoints=checkpoints, scheduler=scheduler, n_workers=min(2, os.cpu_count() or 1),
                     progress=progress, desc="catalogue ROIs", unit="ROI", log=log, error=CatalogError)  # fmt: skip
    records: dict[int, dict] = dict(enumerate(done.results))
    wall = time.perf_counter() - t0
    components = owned_components([records[i] for i in sorted(records)], region)
    sources = merge_components(components, cfg.merge_deg)
    table = catalog_table(sources, cfg.ts_keep)
    cross_match(table, log=log)
    _write_catalog(table, out)
    summary = {
        "n_rois": len(tl),
        "n_components": len(components),
        "n_sources": len(table),
        "fits": int(sum(r["fits"] for r in records.values())),
        # fits that built the models (the rest are the per-component TS and extension tests); a record
        # written by an older skyfit has no count: then None
        "fits_detect": (
            int(sum(r["fits_detect"] for r in records.values()))
            if all("fits_detect" in r for r in records.values())
            else None
        ),  # fmt: skip
        "wall_s": wall,
        "roi_wall_s": [records[i]["wall_s"] for i in sorted(records)],
        "invalid_rois": [i for i in sorted(records) if not records[i]["valid"]],
        "diffuse_amplitudes": [records[i]["diffuse_amplitude"] for i in sorted(records)],
        "background_norms": _mean_norms(records.values()),
    }
    _write_json_atomic(out / "run.json", {"config": cfg_dict, "fingerprint": fp, "versions": _versions(),
                                          "summary": summary})  # fmt: skip
    import yaml

    (out / "config.yaml").write_text(
        "# the configuration of this catalogue: `skyfit catalog --config config.yaml` remakes it\n"
        + yaml.safe_dump(json.loads(json.dumps(cfg_dict)), sort_keys=False)
    )
    if plots:
        plot_region(cfg, table, components, [records[i]["diffuse_amplitude"] for i in sorted(records)], out,
                    summary["background_norms"])  # fmt: skip
    log(f"catalogue: {len(table)} source(s) with TS >= {cfg.ts_keep:g} in {region} ({len(tl)} ROI(s), "
        f"{summary['fits']} fits, {wall:.0f} s) -> {out / 'catalog.fits'}")  # fmt: skip
    return {**summary, "table": table, "components": components, "out_dir": str(out)}


def _versions() -> dict:
    import importlib.metadata as md

    out = {}
    for pkg in ("skyfit", "numpy", "jax", "iminuit", "healpy", "astropy", "gammapy"):
        try:
            out[pkg] = md.version(pkg)
        except md.PackageNotFoundError:
            out[pkg] = None
    return out


def model_from_components(components: list[dict], diffuse_amplitude: float, background_norms: dict | None = None):
    """A Models of catalogue components (as in the ROI checkpoints) plus the diffuse band, and the datasets'
    background norms where the ROIs fitted them (``{dataset: norm}``)."""
    from dataclasses import replace

    from ..models import BackgroundNorm, GaussianSpatialModel, Models, PointSpatialModel, PowerLaw, Source
    from ..skies import galactic_diffuse

    sources = []
    for c in components:
        spatial = (GaussianSpatialModel.create(c["ra"], c["dec"], sigma=c["r39"]) if c["r39"] > 0
                   else PointSpatialModel.create(c["ra"], c["dec"]))  # fmt: skip
        spectral = PowerLaw.create(c["amplitude"], c["index"], c["reference_tev"])
        sources.append(Source(c["component"] + f"_roi{c.get('roi', 0)}", spatial, spectral, datasets=(c["dataset"],)))
    backgrounds = []
    for name, norm in (background_norms or {}).items():
        b = BackgroundNorm.create(name, 1, mode="global")
        backgrounds.append(replace(b, parameters=(replace(b.parameters[0], value=float(norm)),)))
    return Models(sources + [galactic_diffuse(amplitude=diffuse_amplitude)], backgrounds)


def _mean_norms(records) -> dict:
    """Per dataset, the mean over the ROIs of its fitted background norm (ROIs that fitted one)."""
    norms = {}
    for r in records:
        for name, value in (r.get("background_norms") or {}).items():
            norms.setdefault(name, []).append(value)
    return {name: float(np.mean(v)) for name, v in norms.items()}


def plot_region(cfg: CatalogConfig, table, components, diffuse_amplitudes, out: Path,
                background_norms: dict | None = None) -> list[str]:  # fmt: skip
    """Per detector: significance (sqrt TS of a point source over background and diffuse emission) and
    residual significance ((counts - model) / sqrt(model) in 0.3 deg discs) of the whole region, as PNG,
    and as FITS (``maps_<dataset>.fits``: ``TS``, ``SQRT_TS``, ``RESIDUAL_SIGNIFICANCE`` and per bin
    ``COUNTS``, ``NPRED``, ``EXCESS`` over background + diffuse, ``RESIDUAL``; :mod:`skyfit.io.skymaps`)."""
    from ..io.skymaps import write_maps
    from ..plotting import use_file_backend

    use_file_backend()
    import healpy as hp
    import matplotlib.pyplot as plt

    from ..detect.tsmap import ts_map

    region = Region.parse(cfg.region)
    datasets = _region_datasets(cfg, region)
    written = []
    from ..likelihood import Likelihood, npred
    from ..maps import disc_sums

    lc, bc = region.center
    model = model_from_components([{**c, "roi": i} for i, c in enumerate(components)],
                                  float(np.mean(diffuse_amplitudes)) if diffuse_amplitudes else 0.0,
                                  background_norms)  # fmt: skip
    diffuse_only = model.for_datasets([])  # keeps the diffuse band (it applies to every dataset)
    for ds in datasets:
        baseline = npred(diffuse_only, ds)
        tsm = ts_map(ds, baseline, "point")
        sig = tsm.sqrt_ts
        mu = Likelihood(model.for_datasets([ds.name]), [ds]).npred()[0]
        n_s, mu_s = disc_sums(ds.counts.data.sum(axis=0), ds.roi, 0.3), disc_sums(mu.sum(axis=0), ds.roi, 0.3)
        resid = (n_s - mu_s) / np.sqrt(np.maximum(mu_s, 1e-9))
        counts = np.where(ds.mask, ds.counts.data, 0.0)
        maps = {"TS": tsm.ts, "SQRT_TS": sig, "RESIDUAL_SIGNIFICANCE": resid, "COUNTS": counts,
                "NPRED": np.where(ds.mask, mu, 0.0), "EXCESS": counts - np.where(ds.mask, baseline, 0.0),
                "RESIDUAL": counts - np.where(ds.mask, mu, 0.0)}  # fmt: skip
        meta = {"residual_disc_deg": 0.3, "ts": "point source over background + diffuse"}
        written.append(str(write_maps(out / f"maps_{ds.name}.fits", maps, ds.roi, ds.bin_names,
                                      ds.response.energy_reco_edges_tev, meta=meta)))  # fmt: skip
        for kind, values, label, kw in (
            ("significance", sig, "sqrt(TS), point source over background + diffuse", dict(cmap="magma", min=0)),
            ("residual", resid, "(counts - model) / sqrt(model), 0.3 deg discs", dict(cmap="RdBu_r", min=-5, max=5)),
        ):
            full = np.full(hp.nside2npix(ds.roi.nside), hp.UNSEEN)
            full[ds.roi.pixels] = values
            hp.cartview(full, nest=ds.roi.nest, coord=["C", "G"], rot=(lc, bc),
                        lonra=[-region.width / 2 - 0.5, region.width / 2 + 0.5],
                        latra=[-region.height / 2 - 0.5, region.height / 2 + 0.5],
                        title=f"{ds.name}: {label}", **kw)  # fmt: skip
            fig = plt.gcf()
            fig.set_size_inches(10, 4.5)
            for r in table:
                if np.isfinite(r[f"{ds.name}_ra"]):
                    hp.projscatter(r["l"], r["b"], lonlat=True, coord="G", marker="+", color="cyan", s=60)
            hp.graticule(dpar=2, dmer=2, coord="G", color="grey", alpha=0.4)
            path = out / f"{kind}_{ds.name}.png"
            fig.savefig(path, dpi=110)
            plt.close(fig)
            written.append(str(path))
    return written
