"""`skyfit bin` (events to HEALPix counts maps or a complete dataset file) and `skyfit simulate-events` (a
LHAASO-like event stream)."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np

from ._common import ConfigError, add_deprecated_output, add_outdir, output_file, record_outputs, record_result

__all__ = ["add_parsers", "cmd_bin", "cmd_simulate_events"]


def _parse_time(text: str) -> float:
    try:
        return float(text)
    except ValueError:
        from astropy.time import Time

        try:
            return float(Time(text, scale="utc").mjd)
        except ValueError as exc:
            raise ConfigError(f"cannot read the time {text!r}: give an MJD or an ISO date like 2022-03-01") from exc


def cmd_simulate_events(args) -> int:
    from ..models import GaussianSpatialModel, LogParabola, PointSpatialModel, Source
    from ..simulate import simulate_event_stream
    from ..stream import write_event_stream

    sources = []
    for i, spec in enumerate(args.source or []):
        if len(spec) not in (3, 4):
            raise ConfigError(f"--source takes RA DEC CRAB_FRACTION [SIGMA_DEG], got {spec}")
        ra, dec, crab = spec[:3]
        spatial = (
            GaussianSpatialModel.create(ra, dec, spec[3])
            if len(spec) == 4 and spec[3] > 0
            else PointSpatialModel.create(ra, dec)
        )
        # HAWC's Crab log-parabola (Abeysekara et al. 2019) scaled by CRAB_FRACTION
        sources.append(Source(f"src{i}", spatial, LogParabola.create(2.31e-13 * crab, 2.73, 0.06, 7.0)))
    blocks = simulate_event_stream(
        args.instrument,
        _parse_time(args.start),
        args.days,
        sources,
        block_hours=args.block_hours,
        rate_scale=args.rate_scale,
        bins=args.bins,
        seed=args.seed,
    )
    from tqdm import tqdm

    n_blocks = int(np.ceil(args.days * 24.0 / args.block_hours - 1e-9))
    meta = {"INSTRUME": args.instrument.upper(), "SITE": "LHAASO"}
    paths = write_event_stream(
        tqdm(blocks, total=n_blocks, desc="simulating", unit="block"), args.outdir, args.format, meta
    )
    from ..events import EventFile

    n = sum(EventFile(p).n_rows for p in paths)
    record_result(args, n_events=n, n_files=len(paths))
    record_outputs(args, event_files=list(paths))
    print(f"{n} events in {len(paths)} file(s) written to {args.outdir}")
    return 0


def _exclusions_from(args):
    from ..background import Exclusions

    excl = None
    for ra, dec, r in args.exclude_disc or []:
        e = Exclusions.from_discs(ra, dec, r)
        excl = e if excl is None else excl | e
    if args.exclude_band:
        e = Exclusions.galactic_band(args.exclude_band)
        excl = e if excl is None else excl | e
    if args.exclude_catalog:
        e = Exclusions.from_catalog(args.exclude_catalog)
        excl = e if excl is None else excl | e
    return excl


def _bin_stream(args, roi, out: Path) -> int:
    from ..background import DIConfig, grow_exclusions
    from ..stream import bin_event_files

    config = DIConfig(window_hours=args.window_hours)
    excl = _exclusions_from(args)
    common = dict(
        background="di" if args.background == "di" else "none",  # other backgrounds join in _write_binned_dataset
        di_config=config,
        block_hours=args.block_hours,
        scheduler=args.scheduler,
        n_workers=args.workers,
        checkpoint_dir=args.checkpoint,
    )
    res = bin_event_files(args.events, roi, args.n_bins, exclusions=excl, **common)
    if args.background == "di" and args.iterate:
        excl2, n_hot = grow_exclusions(excl, res.counts.data, res.background.data, roi)
        record_result(args, di_iteration_excluded_pixels=n_hot)
        print(f"DI iteration: {n_hot} pixel(s) above 5 sigma excluded; re-estimating")
        if n_hot:
            ck = None if args.checkpoint is None else str(Path(args.checkpoint) / "iteration2")
            res = bin_event_files(args.events, roi, args.n_bins, exclusions=excl2, **{**common, "checkpoint_dir": ck})
    print(res.summary())
    print(json.dumps(res.report))
    record_result(args, report=res.report)
    if args.response is not None:
        return _write_binned_dataset(args, res.counts, res.background, out, how=f"skyfit bin {args.events} (stream)")
    res.counts.write(out, overwrite=True)
    _record_bin(args, "counts", out, res.counts.n_bins, roi)
    print(f"counts maps ({args.n_bins} bins x {roi.n_pix} pixels, nside {roi.nside}) written to {out}")
    if res.background is not None:
        bkg_path = out.with_name(out.stem + "_background" + out.suffix)
        res.background.write(bkg_path, overwrite=True)
        import matplotlib.pyplot as plt

        from ..plotting import plot_hpx, residual_significance

        sig = residual_significance(res.counts.data, res.background.data, roi, radius_deg=0.5)
        fig, ax = plt.subplots(figsize=(6, 5))
        plot_hpx(sig, roi, ax=ax, label="(N - B) / sqrt(B) within 0.5 deg, all bins", cmap="RdBu_r", vmin=-6, vmax=6)
        png = out.with_name(out.stem + "_significance.png")
        fig.savefig(png, dpi=100)
        plt.close(fig)
        from ..io.skymaps import write_maps

        maps_path = out.with_name(out.stem + "_maps.fits")
        excess = res.counts.data - res.background.data
        write_maps(maps_path, {"COUNTS": res.counts.data, "BACKGROUND": res.background.data, "EXCESS": excess,
                               "SIGNIFICANCE": sig}, roi, res.counts.bin_names,
                   meta={"significance_disc_deg": 0.5})  # fmt: skip
        record_outputs(args, background=bkg_path, significance_png=png, maps_fits=maps_path)
        print(f"DI background written to {bkg_path}; significance map {png}")
    return 0


def _record_bin(args, kind: str, out: Path, n_bins: int, roi, name: str | None = None, dataset=None) -> None:
    """For ``--json``: what `skyfit bin` wrote (``kind``: counts maps or a dataset file) and its shape; with
    ``dataset``, its maps as FITS beside it (``<stem>_maps.fits``: counts, background, excess, significance,
    and with ``--ts-map`` the TS map)."""
    record_result(args, kind=kind, name=name, n_bins=n_bins, n_pix=roi.n_pix, nside=roi.nside, nest=roi.nest)
    record_outputs(args, **{kind: out})
    if dataset is not None:
        from ..detect.result_maps import data_maps
        from ..io.skymaps import write_maps

        path = out.with_name(out.stem + "_maps.fits")
        maps = data_maps(dataset, radius_deg=0.2, ts=bool(getattr(args, "ts_map", False)))
        write_maps(path, maps, roi, dataset.bin_names, dataset.response.energy_reco_edges_tev,
                   meta={"significance_disc_deg": 0.2})  # fmt: skip
        record_outputs(args, maps_fits=path)
        print(f"maps ({', '.join(maps)}) written to {path}")


def cmd_bin(args) -> int:
    from astropy.io import fits

    from ..maps import HealpixMaps, HealpixROI, bin_events

    path = Path(args.events)
    out = output_file(args, "counts.fits")
    if (args.response or "").lower() == "fermi":
        return _bin_fermi(args, path, out)
    if (args.response or "").lower() == "gammapy":
        return _bin_gammapy(args, path, out)
    if args.center is None:
        raise ConfigError("give --center RA DEC (deg) and --radius; --galactic-box goes with --response fermi")
    roi = HealpixROI.from_disc(tuple(args.center), args.radius, args.nside or 1024, nest=not args.ring)
    if path.is_dir() and any((path / "events").glob("EventList_*fHitbin*.fits*")):
        return _bin_hawc_release(args, path, out)
    if args.background == "di" or path.is_dir() or path.suffix == ".parquet" or args.n_bins is not None:
        if args.n_bins is None:
            raise ConfigError("streamed binning needs --n-bins (the number of analysis bins)")
        return _bin_stream(args, roi, out)
    if not path.exists():
        raise ConfigError(f"event file {path} does not exist")
    with fits.open(path) as hdul:
        ev_hdus = [h for h in hdul if h.name.startswith("EVENTS")]
        if not ev_hdus:
            raise ConfigError(f"{path} has no EVENTS extension")
        h = ev_hdus[0]
        ra, dec = np.asarray(h.data["RA"], float), np.asarray(h.data["DEC"], float)
        if "BIN" in h.columns.names:
            bins = np.asarray(h.data["BIN"])
            names = h.header.get("BINNAMES", "").split(",") if "BINNAMES" in h.header else None
            n_bins = int(bins.max()) + 1 if names is None else len(names)
        else:
            edges = np.asarray(args.energy_edges, float)
            energy = np.asarray(h.data["ENERGY"], float)
            bins = np.searchsorted(edges, energy, side="right") - 1
            bins[(energy < edges[0]) | (energy >= edges[-1])] = -1
            n_bins = len(edges) - 1
            names = [f"E{lo:.3g}-{hi:.3g}" for lo, hi in zip(edges[:-1], edges[1:], strict=False)]
    counts, report = bin_events(ra, dec, bins, roi, n_bins)
    names = names or [f"bin{i}" for i in range(n_bins)]
    print(json.dumps(report))
    record_result(args, report=report)
    if args.response is not None:
        return _write_binned_dataset(args, HealpixMaps(counts, roi, names), None, out, how=f"skyfit bin {path}")
    HealpixMaps(counts, roi, names).write(out, overwrite=True)
    _record_bin(args, "counts", out, n_bins, roi)
    print(f"counts maps ({n_bins} bins x {roi.n_pix} pixels, nside {roi.nside}) written to {out}")
    return 0


def _bin_fermi(args, path: Path, out: Path) -> int:
    """Fermi-LAT: an FT1 event list, its gtexpcube2 exposure cube, a gtpsf table and a gtmodel model-counts
    cube (the background) over a Galactic box → one dataset file (skyfit.io.fermi.fermi_dataset)."""
    from ..io.fermi import FermiFileError, fermi_dataset

    missing = [opt for opt, v in (("--exposure", args.exposure), ("--psf-table", args.psf_table),
                                  ("--galactic-box", args.galactic_box)) if v is None]  # fmt: skip
    if missing or args.background in (None, "none", "di", "instrument"):
        raise ConfigError(f"--response fermi needs {', '.join(missing + ['--background MODEL_CUBE'])}: the exposure "
                          "cube (gtexpcube2), the PSF table (gtpsf), the Galactic box (deg) and a model-counts cube "
                          "(gtmodel) as the background")  # fmt: skip
    l0, l1, b0, b1 = args.galactic_box
    try:
        ds = fermi_dataset(path, args.exposure, args.psf_table, args.background, (l0, l1), (b0, b1), args.nside or 1024,
                           psf_oversample=args.psf_oversample, name=args.name or "FERMI", log=print)  # fmt: skip
    except FermiFileError as exc:
        raise ConfigError(str(exc)) from None
    ds.write(out, overwrite=True, how=f"skyfit bin {path} --response fermi")
    _record_bin(args, "dataset", out, ds.n_bins, ds.roi, ds.name, ds)
    print(ds.info())
    print(f"dataset (counts, background, response; {ds.n_bins} bins x {ds.roi.n_pix} pixels) written to {out}")
    return 0


def _bin_gammapy(args, path: Path, out: Path) -> int:
    """A gammapy MapDataset file (WCS or HEALPix) → one dataset file (skyfit.io.gammapy.from_map_dataset)."""
    from ..io.gammapy import GammapyDatasetError, from_map_dataset

    try:
        ds = from_map_dataset(path, nside=args.nside, name=args.name or "gammapy", edisp=args.edisp,
                              psf_oversample=args.psf_oversample)  # fmt: skip
    except GammapyDatasetError as exc:
        raise ConfigError(str(exc)) from None
    ds.write(out, overwrite=True, how=f"skyfit bin {path} --response gammapy")
    _record_bin(args, "dataset", out, ds.n_bins, ds.roi, ds.name, ds)
    print(ds.info())
    print(f"dataset ({ds.meta['conversion']}; {ds.n_bins} bins x {ds.roi.n_pix} pixels, nside {ds.roi.nside}; "
          f"{ds.meta['counts_in_region']:.0f} counts in the region, {ds.meta['counts_outside_region']:.0f} outside "
          f"it) written to {out}")  # fmt: skip
    return 0


def _bin_hawc_release(args, path: Path, out: Path) -> int:
    """A HAWC pass-4 release folder (events/, background/, irfs/): events binned per fHit bin and energy
    band, the release's background maps and DL3 IRFs, written as one dataset file."""
    from ..hawc import hawc_dataset

    ds = hawc_dataset(estimator=args.estimator, fhit_bins=tuple(args.fhit), center=tuple(args.center),
                      radius_deg=args.radius, nside=args.nside or 1024, nest=not args.ring, path=path)  # fmt: skip
    for line in ds.meta.get("dropped", []):
        print(f"not used: {line}")
    ds.write(out, overwrite=True, how=f"skyfit bin {path} --estimator {args.estimator} (HAWC pass-4 release)")
    _record_bin(args, "dataset", out, ds.n_bins, ds.roi, ds.name, ds)
    print(ds.info())
    print(f"dataset (counts, background, response; {ds.n_bins} bins x {ds.roi.n_pix} pixels) written to {out}")
    return 0


def _binned_response(args, roi, n_bins: int, livetime_days: float | None):
    """``(response, background template or None)`` for ``--response``: wcda / km2a (the parametric
    instrument), hal:PATH (a HAL detector response), dl3:PATH (GADF IRFs of a drift-scan array)."""
    spec = args.response
    kind, _, arg = spec.partition(":")
    kind = kind.lower()
    if kind in ("wcda", "km2a"):
        from ..simulate import lhaaso_dataset

        if livetime_days is None:
            raise ConfigError(f"--response {spec} needs --livetime-days (the exposure of the events)")
        template = lhaaso_dataset(kind, roi=roi, livetime_days=livetime_days)
        return template.response, template.background, {"instrument": kind.upper(), "livetime_days": livetime_days}
    if kind == "hal":
        from ..io.hal import read_hal_response

        ra, dec = roi.center()
        response = read_hal_response(arg, dec_deg=dec, n_transits=args.transits or 1.0)
        return response, None, {"instrument": response.meta.get("instrument", "HAWC")}
    if kind == "dl3":
        from ..response.dl3 import dl3_response

        if args.site_latitude is None or args.transits is None:
            raise ConfigError(f"--response {spec} needs --site-latitude (deg) and --transits (the number of days)")
        _, dec = roi.radec()
        dec_nodes = np.arange(np.floor(dec.min()) - 1.0, dec.max() + 1.01, 0.5)
        edges = np.asarray(args.energy_edges, float)
        response = dl3_response(arg, site_latitude_deg=args.site_latitude, dec_nodes_deg=dec_nodes,
                                analysis_bins=np.stack([edges[:-1], edges[1:]], axis=1),
                                n_transits=args.transits)  # fmt: skip
        return response, None, {"instrument": response.meta.get("instrument", "DL3")}
    raise ConfigError(f"--response must be wcda, km2a, hal:PATH or dl3:PATH, got {spec!r}")


def _write_binned_dataset(args, counts, background, out: Path, how: str) -> int:
    """Counts (+ a background: from direct integration, a map file or the instrument) + a response → one
    dataset file (Dataset.write)."""
    from ..dataset import Dataset
    from ..maps import HealpixMaps

    roi = counts.roi
    response, template_bkg, meta = _binned_response(args, roi, counts.n_bins, args.livetime_days)
    if response.n_bins != counts.n_bins:
        raise ConfigError(
            f"--response {args.response} has {response.n_bins} analysis bins ({list(response.bin_names)[:4]} ...) "
            f"but the events fall in {counts.n_bins}: bin the events as the response does (--n-bins, "
            "--energy-edges) or give the matching response"
        )
    names = response.bin_names
    if background is None:
        choice = args.background
        if choice == "instrument":
            if template_bkg is None:
                raise ConfigError("--background instrument needs the parametric instrument (--response wcda|km2a)")
            background = template_bkg
        elif choice not in ("none", "di"):
            bkg = HealpixMaps.read(choice, nside=roi.nside, nest=roi.nest)
            idx = bkg.roi.index_of(roi.pixels)
            if np.any(idx < 0) or bkg.n_bins != counts.n_bins:
                raise ConfigError(
                    f"background map {choice} does not cover the ROI ({int(np.sum(idx < 0))} of {roi.n_pix} pixels "
                    f"missing) or has {bkg.n_bins} bins for {counts.n_bins}: make it on the same ROI and bins"
                )
            background = HealpixMaps(bkg.data[:, idx], roi, names)
            meta["background_file"] = str(choice)
        else:
            raise ConfigError(
                "a dataset needs a background: --background di (direct integration from the stream), "
                "--background instrument (the parametric instrument's), or --background MAP.fits"
            )
    ds = Dataset(args.name or meta.get("instrument", "dataset"), HealpixMaps(counts.data, roi, names),
                 HealpixMaps(background.data, roi, names), response, meta=meta)  # fmt: skip
    ds.write(out, overwrite=True, how=how)
    _record_bin(args, "dataset", out, ds.n_bins, roi, ds.name, ds)
    print(ds.info())
    print(f"dataset (counts, background, response; {ds.n_bins} bins x {roi.n_pix} pixels) written to {out}")
    return 0


def add_parsers(sub, common) -> None:
    """`bin` and `simulate-events`."""
    b = sub.add_parser(
        "bin",
        parents=[common],
        help="bin events into HEALPix counts maps, or a complete dataset file (--response, or "
        "a HAWC pass-4 release folder)",
        description="Bin an event list (skyfit or HAWC DL3 FITS, Parquet, a folder of them, a HAWC pass-4 release "
        "folder) into HEALPix counts maps (counts.fits), with --background di their direct-integration "
        "background (counts_background.fits, counts_significance.png), with --response a complete dataset file.",
    )
    b.add_argument("events", help="event file or folder")
    b.add_argument("--center", type=float, nargs=2, default=None, metavar=("RA", "DEC"))
    b.add_argument("--radius", type=float, default=3.0)
    b.add_argument(
        "--nside",
        type=int,
        default=None,
        help="HEALPix nside (default 1024; --response gammapy: the pixels closest to the dataset's)",
    )
    b.add_argument("--ring", action="store_true", help="RING ordering (default NESTED)")
    b.add_argument(
        "--energy-edges", type=float, nargs="+", default=[1.00, 1.78, 3.16, 5.62, 10.0, 17.8, 31.6, 56.2, 100, 177, 316]
    )
    add_outdir(b, "counts.fits (and with --background di its background and significance map)")
    add_deprecated_output(b, "--output", "counts.fits")
    b.add_argument(
        "--background",
        default="none",
        help="di: direct integration from the event stream (needs TIME, AZ, ZEN); instrument: the parametric "
        "instrument's (with --response wcda|km2a); or a HEALPix map file of the expected background",
    )
    b.add_argument("--response", default=None, metavar="SPEC",
                   help="write a complete dataset file: wcda | km2a (parametric instrument), hal:PATH (HAL detector "
                   "response, ROOT or HDF5), dl3:PATH (GADF IRFs of a drift-scan array), fermi (Fermi-LAT: with "
                   "--exposure, --psf-table, --galactic-box and --background MODEL_CUBE), gammapy (EVENTS is a "
                   "gammapy MapDataset file, WCS or HEALPix, converted: skyfit.io.gammapy)")  # fmt: skip
    b.add_argument("--edisp", default="dataset", choices=["dataset", "diagonal"],
                   help="--response gammapy: the dataset's energy-dispersion kernel, or diagonal")  # fmt: skip
    b.add_argument("--exposure", default=None, help="Fermi-LAT: exposure cube (gtexpcube2)")
    b.add_argument("--psf-table", default=None, help="Fermi-LAT: PSF table (gtpsf)")
    b.add_argument("--galactic-box", type=float, nargs=4, default=None, metavar=("L0", "L1", "B0", "B1"),
                   help="Fermi-LAT: the region, a box in Galactic longitude and latitude (deg)")  # fmt: skip
    b.add_argument("--psf-oversample", type=int, default=4,
                   help="Fermi-LAT: PSF averaged over k x k sub-pixels of each pixel (4: nside 1024)")  # fmt: skip
    b.add_argument("--livetime-days", type=float, default=None, help="exposure of the events (parametric response)")
    b.add_argument("--transits", type=float, default=None, help="number of transits (HAL and DL3 responses)")
    b.add_argument("--site-latitude", type=float, default=None, help="array latitude, deg (DL3 responses)")
    b.add_argument("--name", default=None, help="dataset name (default: the instrument)")
    b.add_argument("--ts-map", action="store_true",
                   help="dataset files: add the TS map of a point source over the background to the maps")  # fmt: skip
    b.add_argument("--estimator", default="NN", choices=["NN", "GP"], help="HAWC release: energy estimator")
    b.add_argument("--fhit", type=int, nargs="+", default=[5, 6, 7, 8, 9], help="HAWC release: fHit bins")
    b.add_argument("--n-bins", type=int, default=None, help="analysis bins (streamed files: Parquet, FITS, dirs)")
    b.add_argument("--window-hours", type=float, default=2.0, help="DI window (h)")
    b.add_argument("--block-hours", type=float, default=24.0, help="task length (h); a multiple of the window")
    b.add_argument("--exclude-disc", type=float, nargs=3, action="append", metavar=("RA", "DEC", "R"))
    b.add_argument("--exclude-band", type=float, default=None, help="exclude |b| below this (deg)")
    b.add_argument("--exclude-catalog", default=None, help="FITS/ECSV table with RA, DEC (deg) [, r39]")
    b.add_argument("--iterate", action="store_true", help="re-estimate after excluding >5 sigma excesses")
    b.add_argument("--scheduler", default=None, help="'local' (dask LocalCluster) or a scheduler address")
    b.add_argument("--workers", type=int, default=2)
    b.add_argument("--checkpoint", default=None, help="directory of finished tasks: re-run to resume")
    b.set_defaults(func=cmd_bin)

    se = sub.add_parser(
        "simulate-events", parents=[common], help="simulate a LHAASO-like event stream (cosmic rays + sources)",
        description="Simulate a LHAASO-like event stream (cosmic rays and sources scaled from the Crab), one "
        "file per block of time.",
    )  # fmt: skip
    se.add_argument("--instrument", default="WCDA", choices=["WCDA", "KM2A"])
    se.add_argument("--start", default="2022-03-01", help="UTC start: MJD or ISO date")
    se.add_argument("--days", type=float, default=1.0)
    se.add_argument("--rate-scale", type=float, default=0.01, help="factor on the cosmic-ray rate")
    se.add_argument("--bins", type=int, nargs="+", default=None)
    se.add_argument("--source", type=float, nargs="+", action="append", metavar="RA DEC CRAB [SIGMA]")
    se.add_argument("--block-hours", type=float, default=24.0, help="one file per block")
    se.add_argument("--format", choices=["parquet", "fits"], default="parquet")
    add_outdir(se, "the event files", "events")
    se.add_argument("--seed", type=int, default=0)
    se.set_defaults(func=cmd_simulate_events)
