"""Kill `skyfit catalog` at random moments, resume, and compare with an uninterrupted run (issue #5).

    python benchmarks/catalog_resume.py [--kills 6] [--seed 0] [--region 35,45,-3,3] [--tile-deg 2.5]

A field of 4 ROIs at nside 256 is catalogued once without interruption (time T). Then the same command
runs in a fresh output folder and is killed (SIGKILL) after a random 3 s to T/2, again and again, until it
has been killed ``--kills`` times while unfinished; it is then run to completion. Checked: no
catalogue file exists while the run is unfinished, and the final catalogue equals the uninterrupted
one, row for row. The last line is a JSON object of the figures.
"""

import argparse
import json
import shutil
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import numpy as np


def command(region, tile, outdir):
    return [sys.executable, "-m", "skyfit.cli", "catalog", "--region", region, "--tile-deg", str(tile), "--nside",
            "256", "--overlap-deg", "1", "--outdir", str(outdir), "--no-plots"]  # fmt: skip


def table_text(outdir: Path) -> str:
    from astropy.table import Table

    t = Table.read(outdir / "catalog.ecsv")
    return "\n".join(t.pformat(max_lines=-1, max_width=-1))


def main():
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--kills", type=int, default=6)
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--region", default="35,45,-3,3")
    parser.add_argument("--tile-deg", type=float, default=2.5)
    args = parser.parse_args()
    rng = np.random.default_rng(args.seed)
    work = Path(tempfile.mkdtemp(prefix="skyfit-resume-"))
    t0 = time.perf_counter()
    ref = work / "reference"
    subprocess.run(command(args.region, args.tile_deg, ref), check=True, capture_output=True)
    t_ref = time.perf_counter() - t0
    print(f"uninterrupted run: {t_ref:.0f} s")
    out = work / "interrupted"
    kills, starts, premature_catalogue = 0, 0, 0
    kill_times = []
    while kills < args.kills:
        delay = float(rng.uniform(3.0, max(4.0, 0.5 * t_ref)))
        proc = subprocess.Popen(command(args.region, args.tile_deg, out), stdout=subprocess.DEVNULL,
                                stderr=subprocess.DEVNULL)  # fmt: skip
        starts += 1
        try:
            proc.wait(timeout=delay)
            print(f"start {starts}: finished before the kill at {delay:.1f} s")
            break
        except subprocess.TimeoutExpired:
            proc.kill()
            proc.wait()
            kills += 1
            kill_times.append(round(delay, 1))
            done = len(list((out / "rois").glob("roi_*.json"))) if (out / "rois").exists() else 0
            if (out / "catalog.ecsv").exists() or (out / "catalog.fits").exists():
                premature_catalogue += 1
            print(f"start {starts}: killed at {delay:.1f} s, {done} ROI checkpoint(s) on disk")
    subprocess.run(command(args.region, args.tile_deg, out), check=True, capture_output=True)
    same = table_text(out) == table_text(ref)
    n_rows = len(table_text(ref).splitlines()) - 3
    print(f"resumed catalogue identical to the uninterrupted one: {same} ({n_rows} sources)")
    figures = {"kills": kills, "starts": starts + 1, "kill_times_s": kill_times, "identical": same,
               "premature_catalogue_files": premature_catalogue, "n_sources": n_rows,
               "uninterrupted_s": round(t_ref, 1), "total_s": round(time.perf_counter() - t0, 1)}  # fmt: skip
    shutil.rmtree(work, ignore_errors=True)
    print(json.dumps(figures))


if __name__ == "__main__":
    main()
