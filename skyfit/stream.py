"""Streaming event binning and direct-integration background at scale: in-process or dask.distributed.

The work is cut into independent tasks: one per event file for plain binning, one per time block
(a whole number of DI windows) for direct integration. Each task reads its events in chunks (bounded
memory), and its result (counts and background maps over the ROI plus an event report) is written to
the checkpoint directory as soon as it finishes; a re-run with the same checkpoint directory skips the
tasks already done, so an interrupted run resumes without losing finished work. Tasks run in this
process by default, on a local dask cluster (``scheduler="local"``) or on an existing scheduler
(``scheduler="tcp://host:8786"``); progress is shown with tqdm.
"""

from __future__ import annotations

import hashlib
import json
import zipfile
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from ._tasks import Checkpoints, Task, run_tasks
from .background import DIConfig, DIError, Exclusions, direct_integration_block
from .coords import LHAASO_SITE, Site, SiteFrame
from .events import DI_COLUMNS, REQUIRED_COLUMNS, EventFile, EventFileError, expand_paths, write_events
from .maps import HealpixMaps, HealpixROI, bin_events

__all__ = ["StreamResult", "bin_event_files", "write_event_stream"]


@dataclass
class StreamResult:
    counts: HealpixMaps
    background: HealpixMaps | None
    report: dict

    def summary(self) -> str:
        r = self.report
        lines = [f"{r['n_events']} events read from {r['n_files']} file(s) in {r['n_tasks']} task(s)"]
        for k in (
            "n_binned",
            "n_outside_roi",
            "n_outside_bins",
            "n_outside_time_range",
            "n_above_zenith_cut",
            "n_excluded",
            "n_empty_windows",
            "n_tasks_resumed",
        ):
            if k in r:
                lines.append(f"  {k}: {r[k]}")
        return "\n".join(lines)


def write_event_stream(blocks, directory, fmt: str = "parquet", meta: dict | None = None) -> list[Path]:
    """Write the blocks of :func:`skyfit.simulate.simulate_event_stream` as one file per block."""
    directory = Path(directory)
    directory.mkdir(parents=True, exist_ok=True)
    paths = []
    for t0, t1, ev in blocks:
        path = directory / f"events_{t0:.5f}_{t1:.5f}.{fmt}"
        write_events(path, ev, {**(meta or {}), "TSTART": t0, "TSTOP": t1})
        paths.append(path)
    return paths


# --- tasks (module-level functions, so dask can ship them) ----------------------------------------


def _file_time_range(f: EventFile) -> tuple[float, float]:
    tr = f.time_range
    if tr is not None:
        return tr
    t = f.read(("TIME",))["TIME"]
    if t.size == 0:
        return (np.inf, -np.inf)
    return float(t.min()), float(np.nextafter(t.max(), np.inf))


def _bin_file_task(path, roi, n_bins, chunk_rows, t_range):
    f = EventFile(path)
    counts = np.zeros((n_bins, roi.n_pix))
    report = dict(n_events=0, n_binned=0, n_outside_roi=0, n_outside_bins=0, n_outside_time_range=0)
    for ch in f.iter_chunks(REQUIRED_COLUMNS, chunk_rows):
        t = np.asarray(ch["TIME"], float)
        ok = np.ones(t.size, bool) if t_range is None else (t >= t_range[0]) & (t < t_range[1])
        report["n_events"] += int(t.size)
        report["n_outside_time_range"] += int((~ok).sum())
        c, r = bin_events(ch["RA"][ok], ch["DEC"][ok], np.asarray(ch["BIN"])[ok], roi, n_bins)
        counts += c
        for k in ("n_binned", "n_outside_roi", "n_outside_bins"):
            report[k] += r[k]
    return counts, None, report


def _di_block_task(files, t0, t1, roi, n_bins, site, config, exclusions, chunk_rows, count_outside=(), span=None):
    parts = []
    n_outside = 0
    for path in files:
        f = EventFile(path)
        last = -np.inf
        row = 0
        for ch in f.iter_chunks(DI_COLUMNS, chunk_rows):
            t = np.asarray(ch["TIME"], float)
            down = np.diff(t) < 0
            if t.size and (t[0] < last or down.any()):
                bad = row + (int(np.argmax(down)) + 1 if down.any() else 0)
                raise EventFileError(
                    f"{path}: TIME is not sorted (first decrease at row {bad}); direct integration needs "
                    "time-ordered events: sort the file by TIME"
                )
            last = t[-1] if t.size else last
            row += t.size
            if path in count_outside:  # each file's out-of-range events are counted by one task only
                n_outside += int(np.sum((t < span[0]) | (t >= span[1])))
            sel = (t >= t0) & (t < t1)
            if sel.any():
                parts.append({c: np.asarray(ch[c])[sel] for c in DI_COLUMNS})
    events = {c: np.concatenate([p[c] for p in parts]) if parts else np.empty(0) for c in DI_COLUMNS}
    order = np.argsort(events["TIME"], kind="stable")  # files of one block may interleave
    events = {c: v[order] for c, v in events.items()}
    frame = SiteFrame(site, t0, t1)
    counts, bkg, report = direct_integration_block(events, t0, t1, roi, n_bins, frame, config, exclusions)
    report["n_outside_time_range"] = n_outside
    report["n_events"] += n_outside
    return counts, bkg, report


# --- driver -------------------------------------------------------------------------------------


def _task_key(kind: str, payload) -> str:
    return hashlib.sha1(json.dumps([kind, payload], sort_keys=True, default=str).encode()).hexdigest()[:16]


def _write_checkpoint(f, result) -> None:
    counts, bkg, report = result
    arrays = {"counts": counts, "report": np.array(json.dumps(report))}
    if bkg is not None:
        arrays["background"] = bkg
    np.savez(f, **arrays)


def _checkpoint_valid(path: Path) -> bool:
    try:
        with open(path, "rb") as f, np.load(f) as z:  # our handle: closed even when numpy cannot read it
            return {"counts", "report"} <= set(z.files)
    except (OSError, EOFError, ValueError, zipfile.BadZipFile):
        return False  # missing, or torn (an older writer without atomic rename): redo this task


def _read_checkpoint(path: Path):
    if not _checkpoint_valid(path):
        return None
    with np.load(path) as z:
        return z["counts"], (z["background"] if "background" in z else None), json.loads(str(z["report"]))


def _bin_tasks(opened, file_stamp, roi_key, roi, n_bins, chunk_rows, time_range) -> list[Task]:
    """One task per file: plain binning."""
    tasks = []
    for f in opened:
        f.require(REQUIRED_COLUMNS)
        key = _task_key("bin", [str(f.path.resolve()), file_stamp[str(f.path)], roi_key, n_bins, time_range])
        tasks.append(Task(_bin_file_task, (str(f.path), roi, n_bins, chunk_rows, time_range), f"{key}.npz"))
    return tasks


def _di_tasks(
    files, opened, file_stamp, roi_key, roi, n_bins, di_config, exclusions, block_hours, time_range, site, chunk_rows
) -> tuple[list[Task], int]:
    """One task per time block of direct integration, and the number of events in files wholly outside
    the time range (counted as outside it)."""
    ratio = block_hours / di_config.window_hours
    if abs(ratio - round(ratio)) > 1e-9 or ratio < 1:
        raise DIError(
            f"block_hours ({block_hours}) must be a whole multiple of the DI window ({di_config.window_hours} h)"
        )
    spans = []
    for f in opened:
        f.require(DI_COLUMNS)
        spans.append(_file_time_range(f))
    start = min(s[0] for s in spans) if time_range is None else time_range[0]
    stop = max(s[1] for s in spans) if time_range is None else time_range[1]
    if not np.isfinite(start) or not stop > start:
        raise EventFileError(f"event files {[str(p) for p in files]} hold no events")
    n_blocks = int(np.ceil((stop - start) * 24.0 / block_hours - 1e-9))
    counted = set()
    excl_key = None if exclusions is None else hashlib.sha1(np.packbits(exclusions.mask).tobytes()).hexdigest()
    tasks = []
    for ib in range(n_blocks):
        t0 = start + ib * block_hours / 24.0
        t1 = min(stop, t0 + block_hours / 24.0)
        mine = [str(f.path) for f, s in zip(opened, spans, strict=True) if s[0] < t1 and s[1] > t0]
        st = [(p, file_stamp[p]) for p in mine]
        key = _task_key("di", [st, t0, t1, roi_key, n_bins, site.name, di_config.__dict__, excl_key])
        first = [p for p in mine if p not in counted]
        counted.update(first)
        args = (mine, t0, t1, roi, n_bins, site, di_config, exclusions, chunk_rows, first, (start, stop))
        tasks.append(Task(_di_block_task, args, f"{key}.npz"))
    # files wholly outside the time range: every event counted as outside
    skipped_rows = sum(f.n_rows for f in opened if str(f.path) not in counted)
    return tasks, skipped_rows


def bin_event_files(
    paths,
    roi: HealpixROI,
    n_bins: int,
    background: str = "none",
    bin_names=None,
    di_config: DIConfig | None = None,
    exclusions: Exclusions | None = None,
    block_hours: float = 24.0,
    time_range: tuple[float, float] | None = None,
    site: Site = LHAASO_SITE,
    scheduler: str | None = None,
    n_workers: int = 2,
    checkpoint_dir=None,
    chunk_rows: int = 2_000_000,
    progress: bool = True,
) -> StreamResult:
    """Bin event files into counts maps over ``roi``; optionally estimate the background by DI.

    Parameters
    ----------
    paths : path, directory, glob pattern, or a list of them
        Event files (Parquet or FITS; see :mod:`skyfit.events`).
    roi : HealpixROI
    n_bins : int
        Number of analysis bins (``BIN`` values outside ``0..n_bins-1`` are counted, not binned).
    background : {"none", "di"}
        ``"di"``: direct integration (needs ``AZ``/``ZEN`` and time-sorted files).
    di_config, exclusions :
        Direct-integration settings and exclusion regions.
    block_hours : float
        DI task length; a multiple of ``di_config.window_hours``.
    time_range : (start, stop) MJD, optional
        Events outside are counted and skipped. For DI the default is the files' span.
    scheduler : None, "local" or an address
        None: in this process; "local": a dask ``LocalCluster`` of ``n_workers``; else the address
        of a running dask scheduler.
    checkpoint_dir : path, optional
        Where finished tasks are stored; re-running with it resumes.
    """
    files = expand_paths(paths)
    if not files:
        raise EventFileError("no event files given")
    opened = [EventFile(p) for p in files]
    if background not in ("none", "di"):
        raise DIError(f"background must be 'none' or 'di', got {background!r}")
    # what a finished task depends on, for its checkpoint key: the files' size and time, the ROI
    file_stamp = {str(f.path): (f.path.stat().st_size, f.path.stat().st_mtime_ns) for f in opened}
    roi_key = [roi.nside, roi.nest, hashlib.sha1(roi.pixels.tobytes()).hexdigest()]
    if background == "none":
        tasks, skipped_rows = _bin_tasks(opened, file_stamp, roi_key, roi, n_bins, chunk_rows, time_range), 0
    else:
        tasks, skipped_rows = _di_tasks(files, opened, file_stamp, roi_key, roi, n_bins, di_config or DIConfig(),
                                        exclusions, block_hours, time_range, site, chunk_rows)  # fmt: skip
    ckpt = None
    if checkpoint_dir is not None:
        Path(checkpoint_dir).mkdir(parents=True, exist_ok=True)
        ckpt = Checkpoints(Path(checkpoint_dir), _write_checkpoint, _read_checkpoint, _checkpoint_valid)
    counts = np.zeros((n_bins, roi.n_pix))
    bkg = np.zeros((n_bins, roi.n_pix)) if background == "di" else None
    total: dict = {"n_events": skipped_rows, "n_outside_time_range": skipped_rows} if skipped_rows else {}

    def absorb(_, result):  # in task order: the same sums however the tasks were run or resumed
        c, b, r = result
        nonlocal counts, bkg
        counts += c
        if bkg is not None:
            bkg += b
        for k, v in r.items():
            total[k] = total.get(k, 0) + v

    run = run_tasks(tasks, checkpoints=ckpt, scheduler=scheduler, n_workers=n_workers, progress=progress,
                    desc=f"binning ({background})", unit="task", on_result=absorb)  # fmt: skip
    total.update(n_files=len(files), n_tasks=len(tasks), n_tasks_resumed=run.n_resumed)
    names = tuple(bin_names) if bin_names is not None else tuple(f"bin{i}" for i in range(n_bins))
    counts_map = HealpixMaps(counts, roi, names)
    bkg_map = HealpixMaps(bkg, roi, names) if bkg is not None else None
    return StreamResult(counts_map, bkg_map, total)
