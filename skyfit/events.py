"""Event files (Parquet and FITS): writing, validated chunked reading with bounded memory.

An event table has one row per event and at least the columns ``TIME`` (UTC MJD, float64), ``RA``,
``DEC`` (ICRS, deg) and ``BIN`` (analysis-bin index, integer); direct integration also needs the
local direction ``AZ``, ``ZEN`` (deg). Simulated streams add ``SOURCE`` (-1 for cosmic rays, else
the index of the source that produced the event). File metadata (Parquet schema metadata or FITS
header keywords) carries ``TSTART``/``TSTOP`` (MJD), ``SITE``, ``INSTRUME`` and ``BINNAMES``.

Every problem with a file raises :class:`EventFileError` naming the file and what to do about it.
"""

from __future__ import annotations

import glob
import json
from collections.abc import Iterator
from pathlib import Path

import numpy as np

__all__ = ["EventFileError", "EventFile", "write_events", "REQUIRED_COLUMNS", "DI_COLUMNS"]

REQUIRED_COLUMNS = ("TIME", "RA", "DEC", "BIN")
DI_COLUMNS = ("TIME", "RA", "DEC", "BIN", "AZ", "ZEN")
_META_KEYS = ("TSTART", "TSTOP", "SITE", "INSTRUME", "BINNAMES")


class EventFileError(ValueError):
    """An event file is missing, corrupt, cut short, or lacks what the task needs."""


def write_events(path, events: dict, meta: dict | None = None) -> Path:
    """Write ``events`` (dict of equal-length 1-D arrays) to ``path`` (``.parquet`` or ``.fits``).

    ``meta`` may hold ``TSTART``, ``TSTOP`` (MJD), ``SITE``, ``INSTRUME``, ``BINNAMES`` (list).
    The file is written under a temporary name and renamed, so a crash never leaves a file that
    looks complete.
    """
    path = Path(path)
    meta = dict(meta or {})
    lengths = {k: len(v) for k, v in events.items()}
    if len(set(lengths.values())) > 1:
        raise ValueError(f"event columns differ in length: {lengths}")
    tmp = path.with_name(path.name + ".part")
    if path.suffix == ".parquet":
        import pyarrow as pa
        import pyarrow.parquet as pq

        table = pa.table({k: np.asarray(v) for k, v in events.items()})
        table = table.replace_schema_metadata({"skyfit": json.dumps(meta, default=_json_default)})
        pq.write_table(table, tmp, row_group_size=1_000_000)
    elif path.suffix in (".fits", ".fit") or path.name.endswith(".fits.gz"):
        from astropy.io import fits

        hdu = fits.BinTableHDU.from_columns(
            [fits.Column(name=k, array=np.asarray(v), format=_fits_format(np.asarray(v))) for k, v in events.items()],
            name="EVENTS",
        )
        for k, v in meta.items():
            hdu.header[k[:8]] = json.dumps(v, default=_json_default) if isinstance(v, list | tuple) else v
        hdu.writeto(tmp, overwrite=True)
    else:
        raise ValueError(f"{path}: unknown event-file type; use .parquet or .fits")
    tmp.replace(path)
    return path


def _json_default(o):
    if isinstance(o, np.generic):
        return o.item()
    if isinstance(o, np.ndarray):
        return o.tolist()
    raise TypeError(f"cannot store {type(o).__name__} as JSON")


def _fits_format(a: np.ndarray) -> str:
    return {"f8": "D", "f4": "E", "i8": "K", "i4": "J", "i2": "I", "u1": "B", "b1": "L"}[a.dtype.str[1:]]


class EventFile:
    """One event file, opened lazily; reads only the columns asked for, in chunks.

    Parameters
    ----------
    path : str or Path
    """

    def __init__(self, path):
        self.path = Path(path)
        if not self.path.exists():
            raise EventFileError(f"{self.path}: event file not found (check the path or SKYFIT_DATA)")
        self.kind = "parquet" if self.path.suffix == ".parquet" else "fits"
        try:
            if self.kind == "parquet":
                import pyarrow.parquet as pq

                pf = pq.ParquetFile(self.path)
                self.n_rows = pf.metadata.num_rows
                self.columns = tuple(pf.schema_arrow.names)
                raw = (pf.schema_arrow.metadata or {}).get(b"skyfit")
                self.meta = json.loads(raw) if raw else {}
            else:
                from astropy.io import fits

                with fits.open(self.path, memmap=True) as hdul:
                    hdu = hdul["EVENTS"] if "EVENTS" in hdul else hdul[1]
                    self.n_rows = int(hdu.header["NAXIS2"])
                    self.columns = tuple(c.name for c in hdu.columns)
                    self.meta = {}
                    for k in _META_KEYS:
                        if k in hdu.header:
                            v = hdu.header[k]
                            self.meta[k] = json.loads(v) if k == "BINNAMES" else v
        except EventFileError:
            raise
        except Exception as exc:  # pyarrow/astropy raise many types for a damaged file
            raise EventFileError(
                f"{self.path}: cannot read the event file ({type(exc).__name__}: {exc}); it may be cut short "
                "or corrupt: copy or regenerate it"
            ) from exc

    def require(self, columns) -> None:
        missing = [c for c in columns if c not in self.columns]
        if missing:
            raise EventFileError(
                f"{self.path}: missing column(s) {missing}; it has {list(self.columns)}. "
                f"skyfit needs {list(columns)} (TIME in UTC MJD, RA/DEC in deg ICRS, BIN as the analysis-bin index"
                + (", AZ/ZEN in deg local" if "AZ" in columns else "")
                + ")"
            )

    @property
    def time_range(self) -> tuple[float, float] | None:
        if "TSTART" in self.meta and "TSTOP" in self.meta:
            return float(self.meta["TSTART"]), float(self.meta["TSTOP"])
        return None

    def iter_chunks(self, columns=REQUIRED_COLUMNS, chunk_rows: int = 2_000_000) -> Iterator[dict]:
        """Yield dicts of NumPy arrays of at most ``chunk_rows`` rows (bounded memory)."""
        self.require(columns)
        try:
            if self.kind == "parquet":
                import pyarrow.parquet as pq

                pf = pq.ParquetFile(self.path)
                # single-threaded decoding: parallelism comes from tasks (in-process or dask workers)
                for batch in pf.iter_batches(batch_size=chunk_rows, columns=list(columns), use_threads=False):
                    yield {c: batch.column(c).to_numpy(zero_copy_only=False) for c in columns}
            else:
                from astropy.io import fits

                with fits.open(self.path, memmap=True) as hdul:
                    data = (hdul["EVENTS"] if "EVENTS" in hdul else hdul[1]).data
                    for start in range(0, self.n_rows, chunk_rows):
                        rows = data[start : start + chunk_rows]
                        yield {c: np.array(rows[c]) for c in columns}
                    del data
        except EventFileError:
            raise
        except Exception as exc:
            raise EventFileError(
                f"{self.path}: reading failed part-way ({type(exc).__name__}: {exc}); the file is cut short or "
                "corrupt: copy or regenerate it"
            ) from exc

    def read(self, columns=REQUIRED_COLUMNS) -> dict:
        parts = list(self.iter_chunks(columns, chunk_rows=max(self.n_rows, 1)))
        if not parts:
            return {c: np.empty(0) for c in columns}
        return {c: np.concatenate([p[c] for p in parts]) for c in columns}


def expand_paths(paths) -> list[Path]:
    """Files from a list of paths, directories (their *.parquet and *.fits files) or glob patterns."""
    out = []
    for p in [paths] if isinstance(paths, str | Path) else paths:
        p = Path(p)
        if p.is_dir():
            found = sorted([*p.glob("*.parquet"), *p.glob("*.fits"), *p.glob("*.fits.gz")])
            if not found:
                raise EventFileError(f"{p}: directory holds no .parquet or .fits event files")
            out.extend(found)
        elif any(ch in str(p) for ch in "*?["):
            found = sorted(Path(f) for f in glob.glob(str(p)))
            if not found:
                raise EventFileError(f"{p}: pattern matches no event files")
            out.extend(found)
        else:
            out.append(p)
    return out
