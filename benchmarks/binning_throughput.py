"""Streaming binning and direct-integration throughput, in-process and on a 2-worker dask cluster.

    python benchmarks/binning_throughput.py [--days 4] [--rate-scale 0.03] [--workdir /tmp/skyfit-bench]

Simulates a WCDA-like background stream (about 3.6e6 events per day at the default rate scale), writes
one Parquet file per day, and times, side by side in one run:
* plain binning onto a 40 deg x 20 deg Galactic-plane region at nside 256, in this process;
* the same on a dask LocalCluster of 2 single-threaded workers (cluster start-up excluded);
* binning + direct-integration background (2 h windows), in this process.
Peak memory is the largest resident set of this process (and of the workers, for dask). The last
line is a JSON object with ``events_per_s_per_core``, ``di_events_per_s``, ``dask_speedup_2_workers``,
``peak_mb`` and the raw figures.
"""

import argparse
import json
import resource
import shutil
import time
from pathlib import Path

import astropy.units as u
from astropy.coordinates import SkyCoord
from regions import RectangleSkyRegion

from skyfit.maps import HealpixROI
from skyfit.simulate import simulate_event_stream
from skyfit.stream import bin_event_files, write_event_stream

START = 59639.0


def _peak_mb():
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024.0


def main():
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--days", type=float, default=4.0)
    parser.add_argument("--rate-scale", type=float, default=0.03)
    parser.add_argument("--workdir", default="/tmp/skyfit-bench")
    parser.add_argument("--reuse", action="store_true", help="bin the files already in --workdir")
    args = parser.parse_args()
    work = Path(args.workdir)
    t0 = time.perf_counter()
    if args.reuse and any(work.glob("*.parquet")):
        files = sorted(work.glob("*.parquet"))
        sim_s = float("nan")
    else:
        shutil.rmtree(work, ignore_errors=True)
        files = write_event_stream(
            simulate_event_stream("WCDA", START, args.days, rate_scale=args.rate_scale, block_hours=24, seed=1), work
        )
        sim_s = time.perf_counter() - t0
    region = RectangleSkyRegion(SkyCoord(40.0, 0.0, unit="deg", frame="galactic"), 40 * u.deg, 20 * u.deg)
    roi = HealpixROI.from_region(region, nside=256, nest=True)

    t0 = time.perf_counter()
    plain = bin_event_files(work, roi, 6, progress=False)
    bin_s = time.perf_counter() - t0
    n = plain.report["n_events"]
    mem_after_bin = _peak_mb()

    from dask.distributed import Client, LocalCluster

    with LocalCluster(n_workers=2, threads_per_worker=1, processes=True, dashboard_address=None) as cluster:
        with Client(cluster) as client:
            t0 = time.perf_counter()
            futures = [client.submit(_bin_one, str(f), roi, pure=False) for f in files]
            total = sum(fu.result() for fu in futures)
            dask_s = time.perf_counter() - t0
            worker_mb = max(v["metrics"]["memory"] / 2**20 for v in client.scheduler_info()["workers"].values())
    assert total == plain.counts.data.sum()

    t0 = time.perf_counter()
    di = bin_event_files(work, roi, 6, background="di", block_hours=24, progress=False)
    di_s = time.perf_counter() - t0
    figures = {
        "n_events": int(n),
        "n_files": len(files),
        "simulate_events_per_s": None if sim_s != sim_s else round(n / sim_s),
        "events_per_s_per_core": round(n / bin_s),
        "dask_events_per_s_2_workers": round(n / dask_s),
        "dask_speedup_2_workers": round(bin_s / dask_s, 2),
        "di_events_per_s": round(n / di_s),
        "peak_mb": round(max(_peak_mb(), mem_after_bin), 1),
        "dask_worker_peak_mb": round(worker_mb, 1),
        "region_pixels": int(roi.n_pix),
        "di_background_sum": round(float(di.background.data.sum()), 1),
        "counts_sum": int(di.counts.data.sum()),
    }
    print(f"{n} events in {len(files)} Parquet files (simulated at {n / sim_s:.3g} events/s)")
    print("Parquet decoding is single-threaded; in-process runs on one core, dask on two workers")
    print(f"binning, in-process : {n / bin_s:.3g} events/s (one core)")
    print(f"binning, dask x2    : {n / dask_s:.3g} events/s, speed-up {bin_s / dask_s:.2f}x")
    print(f"binning + DI        : {n / di_s:.3g} events/s")
    print(f"peak memory: {figures['peak_mb']} MB (driver), {figures['dask_worker_peak_mb']} MB (dask worker)")
    print(json.dumps(figures))


def _bin_one(path, roi):
    return float(bin_event_files(path, roi, 6, progress=False).counts.data.sum())


if __name__ == "__main__":
    main()
