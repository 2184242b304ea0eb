"""From the ROIs' records to the catalogue: ownership of the components, WCDA + KM2A merging, the
1LHAASO-like table, cross-matching with 1LHAASO and 3HWC, and the catalogue files."""

from __future__ import annotations

import os
from pathlib import Path

import numpy as np

from ..skies import Region


def owned_components(records: list[dict], region: Region, match_deg: float = 0.3) -> list[dict]:
    """The components each ROI owns (fitted position in its tile), plus those that an ROI fitted in a
    neighbour's tile where the neighbour has nothing of the same detector within ``match_deg`` + half
    the smaller r39 of the two (a source on a tile edge that each ROI places in the other's tile would
    otherwise be lost; the same source fitted by two ROIs lands within about its position error)."""
    from ..maps import unit_vectors

    owned = [{**c, "roi": r["index"]} for r in records for c in r["components"] if c["owned"]]
    orphans = [{**c, "roi": r["index"]} for r in records for c in r["components"] if not c["owned"]]
    for c in sorted(orphans, key=lambda c: -c["ts"]):
        if not region.contains(c["l"], c["b"]):
            continue  # in the margin outside the region: not this catalogue's
        if not c.get("in_roi", True):
            continue  # beyond the data of the ROI that fitted it: there only for what spills into the ROI
        v = unit_vectors(c["ra"], c["dec"])
        near = [o for o in owned if o["dataset"] == c["dataset"]
                and np.degrees(np.arccos(np.clip(v @ unit_vectors(o["ra"], o["dec"]), -1, 1)))
                < match_deg + 0.5 * min(o["r39"], c["r39"])]  # fmt: skip
        if not near:
            owned.append({**c, "owned": True, "adopted": True})
    return owned


def merge_components(components: list[dict], merge_deg: float) -> list[dict]:
    """One source per WCDA component, with the nearest KM2A component within ``merge_deg`` + both r39;
    unmatched KM2A components are sources of their own (as in 1LHAASO's two-component sources)."""
    from ..maps import unit_vectors

    wcda = [c for c in components if c["dataset"] == "WCDA"]
    km2a = [c for c in components if c["dataset"] == "KM2A"]
    other = [c for c in components if c["dataset"] not in ("WCDA", "KM2A")]
    used = set()
    sources = []
    pairs = []
    for i, w in enumerate(wcda):
        for j, k in enumerate(km2a):
            sep = np.degrees(
                np.arccos(np.clip(unit_vectors(w["ra"], w["dec"]) @ unit_vectors(k["ra"], k["dec"]), -1, 1))
            )
            if sep < merge_deg + w["r39"] + k["r39"]:
                pairs.append((sep, i, j))
    taken_w = set()
    for sep, i, j in sorted(pairs):
        if i in taken_w or j in used:
            continue
        taken_w.add(i)
        used.add(j)
        sources.append({"WCDA": wcda[i], "KM2A": km2a[j], "sep": float(sep)})
    sources += [{"WCDA": w} for i, w in enumerate(wcda) if i not in taken_w]
    sources += [{"KM2A": k} for j, k in enumerate(km2a) if j not in used]
    sources += [{c["dataset"]: c} for c in other]
    return sources


def _name(ra: float, dec: float) -> str:
    from astropy.coordinates import SkyCoord

    c = SkyCoord(ra, dec, unit="deg")
    h = c.ra.hms
    sign = "+" if dec >= 0 else "-"
    d = abs(dec)
    return f"SKYFIT J{int(h.h):02d}{int(h.m):02d}{sign}{int(d):02d}{int((d % 1) * 60):02d}"


def catalog_table(sources: list[dict], ts_keep: float):
    """1LHAASO-like table: one row per source with TS >= ``ts_keep`` in at least one component; the
    position and r39 are the best-measured (highest TS) component's; per-detector columns follow."""
    from astropy.coordinates import SkyCoord
    from astropy.table import Table

    rows = []
    found = {k for s in sources for k, v in s.items() if isinstance(v, dict)}
    # per-detector columns: LHAASO's two always (one table layout for its catalogues), or the detectors found
    dets = ("WCDA", "KM2A") if found <= {"WCDA", "KM2A"} else tuple(sorted(found))
    for s in sources:
        comps = {k: v for k, v in s.items() if isinstance(v, dict)}  # detector -> component
        best = max(comps.values(), key=lambda c: c["ts"])
        if best["ts"] < ts_keep:
            continue
        g = SkyCoord(best["ra"], best["dec"], unit="deg").galactic
        row = {"name": _name(best["ra"], best["dec"]), "ra": best["ra"], "dec": best["dec"], "l": g.l.deg,
               "b": g.b.deg, "pos_err95": best["pos_err95"], "r39": best["r39"], "r39_err": best["r39_err"],
               "ts": best["ts"], "components": "+".join(sorted(comps))}  # fmt: skip
        for det in dets:
            c = comps.get(det)
            for key in ("ra", "dec", "pos_err95", "r39", "r39_err", "amplitude", "amplitude_err", "index",
                        "index_err", "reference_tev", "ts", "ts_ext"):  # fmt: skip
                row[f"{det}_{key}"] = float(c[key]) if c is not None else np.nan
        rows.append(row)
    names = ["name", "ra", "dec", "l", "b", "pos_err95", "r39", "r39_err", "ts", "components"]
    names += [f"{d}_{k}" for d in dets for k in ("ra", "dec", "pos_err95", "r39", "r39_err", "amplitude",
              "amplitude_err", "index", "index_err", "reference_tev", "ts", "ts_ext")]  # fmt: skip
    if not rows:
        t = Table(names=names, dtype=[str] + [float] * 8 + [str] + [float] * (len(names) - 10))
    else:
        t = Table(rows=[[r[n] for n in names] for r in rows], names=names)
        t.sort("ra")
    units = {"ra": "deg", "dec": "deg", "l": "deg", "b": "deg", "pos_err95": "deg", "r39": "deg", "r39_err": "deg"}
    for n in t.colnames:
        base = n.split("_", 1)[1] if n.startswith(tuple(f"{d}_" for d in dets)) else n
        if base.startswith("amplitude"):
            t[n].info.format = ".3e"
        elif base in ("ts", "ts_ext"):
            t[n].info.format = ".1f"
        elif base in ("index", "index_err", "reference_tev"):
            t[n].info.format = ".2f"
        elif base != "components" and n != "name":
            t[n].info.format = ".3f"
        if base in units:
            t[n].unit = units[base]
        elif base.startswith("amplitude"):
            t[n].unit = "TeV-1 cm-2 s-1"
        elif base == "reference_tev":
            t[n].unit = "TeV"
    t.meta["comments"] = [f"skyfit catalogue; sources with TS >= {ts_keep:g}; pos_err95: 95% position error"]
    return t


def cross_match(table, radius_deg: float = 0.5, log=print) -> None:
    """Add the nearest 1LHAASO and 3HWC sources (gammapy's catalogue readers) within ``radius_deg`` plus
    the source's r39: columns ``assoc_1lhaaso``/``sep_1lhaaso`` and ``assoc_3hwc``/``sep_3hwc``."""
    from astropy.coordinates import SkyCoord
    from gammapy.catalog import SourceCatalog1LHAASO, SourceCatalog3HWC

    from .._data import DataNotFoundError, data_dir
    from ..skies import BUILTIN_COVERAGE, builtin_catalog_file

    readers = {}
    files = {"1lhaaso": ("1LHAASO_catalog.fits", SourceCatalog1LHAASO), "3hwc": ("3HWC.ecsv", SourceCatalog3HWC)}
    inside = len(table) == 0 or bool(np.all(BUILTIN_COVERAGE.contains(table["l"], table["b"], -radius_deg - 1.0)))
    for key, (filename, reader) in files.items():
        try:
            readers[key] = reader(str(data_dir("catalogs", filename)))
        except DataNotFoundError as exc:
            if inside:  # the shipped subset holds every source that can match here
                readers[key] = reader(str(builtin_catalog_file(key)))
            else:
                log(f"cross-match with {key} skipped (the shipped subset covers only {BUILTIN_COVERAGE}): {exc}")
    for key in ("1lhaaso", "3hwc"):
        names = np.full(len(table), "", dtype="U32")
        seps = np.full(len(table), np.nan)
        if key in readers and len(table):
            cat = readers[key]
            names_col = cat.table["Source_Name" if key == "1lhaaso" else "source_name"]
            here = SkyCoord(table["ra"], table["dec"], unit="deg")
            idx, sep, _ = here.match_to_catalog_sky(cat.positions.icrs)
            r39 = np.nan_to_num(np.asarray(table["r39"], float))
            ok = sep.deg < radius_deg + r39
            for i in np.flatnonzero(ok):
                n = names_col[idx[i]]
                names[i] = (n.decode() if isinstance(n, bytes) else str(n)).strip()
                seps[i] = sep.deg[i]
        table[f"assoc_{key}"] = names
        table[f"sep_{key}"] = seps
        table[f"sep_{key}"].unit = "deg"


def _write_catalog(table, out: Path) -> None:
    for name, fmt in (("catalog.fits", "fits"), ("catalog.ecsv", "ascii.ecsv")):
        tmp = out / f".{name}.tmp{os.getpid()}"
        table.write(tmp, format=fmt, overwrite=True)
        os.replace(tmp, out / name)
    lines = ["# Region file format: DS9 version 4.1", "global color=green", "icrs"]
    for r in table:
        radius = max(float(r["r39"]), 0.05) if np.isfinite(r["r39"]) else 0.05
        lines.append(f"circle({r['ra']:.4f},{r['dec']:.4f},{radius:.4f}d) # text={{{r['name']}}}")
    tmp = out / f".catalog.reg.tmp{os.getpid()}"
    tmp.write_text("\n".join(lines) + "\n")
    os.replace(tmp, out / "catalog.reg")
