"""HAL maptrees (see :mod:`skyfit.io.hal`): read, write, and make a skyfit dataset of one."""

from __future__ import annotations

import os
from pathlib import Path

import healpy as hp
import numpy as np

from ..maps import HealpixMaps, HealpixROI
from ._hal_common import (
    HDF5_SUFFIXES,
    ROOT_SUFFIXES,
    HALFormatError,
    _detect_format,
    _open_hdf5,
    _open_root,
    _root_first,
)
from ._hal_pandas import (
    _attrs,
    _column,
    _h5_root_attrs,
    _read_pandas_frame,
    _unique_in_order,
    _write_pandas_empty_series,
    _write_pandas_frame,
)
from ._hal_response import read_hal_response


def _roi_ring_ids(roi: HealpixROI) -> np.ndarray:
    return roi.pixels if not roi.nest else hp.nest2ring(roi.nside, roi.pixels)


def _read_maptree_root(path: Path, roi: HealpixROI | None):
    f = _open_root(path)
    try:
        if "BinInfo" not in f:
            hint = " (it looks like a response: read it with read_hal_response)" if "LogLogSpectrum" in f else ""
            raise HALFormatError(
                f"{path}: no 'BinInfo' tree in this ROOT file{hint}; a HAL maptree holds BinInfo and one "
                "nHit<bin>/data and nHit<bin>/bkg tree per bin"
            )
        info = f["BinInfo"]
        branches = info.keys()
        if "name" in branches:
            names = [str(v) for v in info["name"].array(library="np")]
        elif "id" in branches:
            names = [str(int(v)) for v in info["id"].array(library="np")]
        else:
            raise HALFormatError(f"{path}: BinInfo has neither a 'name' nor an 'id' branch; the maptree is incomplete")
        if "totalDuration" not in branches:
            raise HALFormatError(f"{path}: BinInfo has no 'totalDuration' branch; the maptree is incomplete")
        durations = np.asarray(info["totalDuration"].array(library="np"), float)
        trees = []
        for name in names:
            pair = []
            for kind in ("data", "bkg"):
                keys = [f"nHit{name}/{kind}", f"nHit0{name}/{kind}"]
                tree = _root_first(f, path, keys, f"{kind} map of bin {name!r}")
                if "count" not in tree.keys():
                    raise HALFormatError(f"{path}: tree {tree.object_path!r} has no 'count' branch")
                pair.append(tree)
            trees.append(pair)
        npix = {int(t.num_entries) for pair in trees for t in pair}
        if len(npix) != 1:
            raise HALFormatError(f"{path}: the bins' maps have different sizes {sorted(npix)}; skyfit needs one nside")
        npix = npix.pop()
        try:
            nside = hp.npix2nside(npix)
        except ValueError as exc:
            raise HALFormatError(
                f"{path}: maps have {npix} entries, not a full HEALPix sky; the file is corrupt"
            ) from exc
        if roi is not None:
            if roi.nside != nside:
                raise HALFormatError(
                    f"{path}: the maptree has nside {nside}, the ROI nside {roi.nside}: build the ROI at nside {nside}"
                )
            ring = _roi_ring_ids(roi)
            start, stop = int(ring.min()), int(ring.max()) + 1
            data = np.empty((2, len(names), roi.n_pix))
            for b, pair in enumerate(trees):
                for k, tree in enumerate(pair):
                    values = tree["count"].array(library="np", entry_start=start, entry_stop=stop)
                    data[k, b] = values[ring - start]
            out_roi = roi
        else:
            sparse = []  # per bin: pixels where counts or background is non-zero, and the values there
            for pair in trees:
                full = [np.asarray(t["count"].array(library="np"), float) for t in pair]
                nz = np.nonzero((full[0] != 0) | (full[1] != 0))[0]
                sparse.append((nz, full[0][nz], full[1][nz]))
            union = np.unique(np.concatenate([nz for nz, _, _ in sparse]))
            out_roi = HealpixROI(nside, False, union)
            data = np.zeros((2, len(names), union.size))
            for b, (nz, o, bk) in enumerate(sparse):
                pos = np.searchsorted(union, nz)
                data[0, b, pos], data[1, b, pos] = o, bk
    except HALFormatError:
        raise
    except Exception as exc:
        raise HALFormatError(f"{path}: cannot read the maptree ({exc!r}); the file is corrupt: copy it again") from exc
    finally:
        f.close()
    meta = {
        "file": str(path),
        "format": "root",
        "n_transits": float(durations.max() / 24.0),
        "n_transits_per_bin": durations / 24.0,
        "nside": int(nside),
        "nside_per_bin": np.full(len(names), nside),
        "scheme": "RING",
        "stored": "full-sky",
        "file_roi": None,
    }
    return names, out_roi, data, meta


def _read_maptree_hdf5(path: Path, roi: HealpixROI | None):
    with _open_hdf5(path) as h5:
        if "/analysis_bins" not in h5 or "/analysis_bins_meta" not in h5:
            missing = "/analysis_bins" if "/analysis_bins" not in h5 else "/analysis_bins_meta"
            hint = " (it looks like a response: read it with read_hal_response)" if "/effective_area" in h5 else ""
            raise HALFormatError(
                f"{path}: no {missing!r} in this HDF5 file{hint}; a HAL maptree holds /analysis_bins, "
                "/analysis_bins_meta and /ROI"
            )
        frame = _read_pandas_frame(path, h5, "/analysis_bins")
        meta_frame = _read_pandas_frame(path, h5, "/analysis_bins_meta")
        file_roi = _attrs(h5["/ROI"]).get("metadata") if "/ROI" in h5 else None
    if len(frame["index"]) != 2:
        raise HALFormatError(f"{path}: /analysis_bins does not have HAL's (bin, pixel) index")
    row_bin, row_pix = frame["index"][0].astype(str), frame["index"][1].astype(np.int64)
    names = _unique_in_order(row_bin)
    meta_names = list(meta_frame["index"][0].astype(str))
    missing = [n for n in names if n not in meta_names]
    if missing:
        raise HALFormatError(f"{path}: /analysis_bins_meta has no entry for bins {missing}; the maptree is incomplete")
    pick = [meta_names.index(n) for n in names]
    nsides = _column(path, meta_frame, "/analysis_bins_meta", "nside")[pick].astype(int)
    schemes = _column(path, meta_frame, "/analysis_bins_meta", "scheme")[pick].astype(int)
    transits = _column(path, meta_frame, "/analysis_bins_meta", "n_transits")[pick]
    if len(set(nsides)) != 1 or len(set(schemes)) != 1:
        raise HALFormatError(
            f"{path}: bins have different nside {sorted(set(nsides))} or scheme {sorted(set(schemes))}; "
            "skyfit needs one pixelisation for all bins"
        )
    nside, nest = int(nsides[0]), bool(schemes[0] == 1)
    obs = _column(path, frame, "/analysis_bins", "observation")
    bkg = _column(path, frame, "/analysis_bins", "background")
    per_bin = []
    for name in names:
        rows = row_bin == name
        pix = row_pix[rows]
        order = np.argsort(pix, kind="stable")
        per_bin.append((pix[order], obs[rows][order], bkg[rows][order]))
    npix = hp.nside2npix(nside)
    stored = "full-sky" if all(p.size == npix for p, _, _ in per_bin) else "partial"
    if roi is not None:
        if roi.nside != nside:
            raise HALFormatError(
                f"{path}: the maptree has nside {nside}, the ROI nside {roi.nside}: build the ROI at nside {nside}"
            )
        want = (
            roi.pixels
            if roi.nest == nest
            else (hp.ring2nest(nside, roi.pixels) if nest else hp.nest2ring(nside, roi.pixels))
        )
        out_roi = roi
    else:
        if stored == "full-sky":
            nz = np.zeros(npix, bool)
            for pix, o, b in per_bin:
                nz[pix[(o != 0) | (b != 0)]] = True
            want = np.nonzero(nz)[0]
        else:
            want = per_bin[0][0]
            for pix, _, _ in per_bin[1:]:
                want = np.union1d(want, pix)
        out_roi = HealpixROI(nside, nest, want)
        want = out_roi.pixels
    data = np.empty((2, len(names), want.size))
    for b, (pix, o, bk) in enumerate(per_bin):
        pos = np.clip(np.searchsorted(pix, want), 0, max(pix.size - 1, 0))
        found = (pix.size > 0) & (pix[pos] == want) if pix.size else np.zeros(want.size, bool)
        if not np.all(found):
            raise HALFormatError(
                f"{path}: bin {names[b]!r} stores {pix.size} pixels, {int((~found).sum())} of the requested ROI "
                "are not among them: use an ROI inside the one the maptree was written for"
            )
        data[0, b], data[1, b] = o[pos], bk[pos]
    meta = {
        "file": str(path),
        "format": "hdf5",
        "n_transits": float(np.max(transits)),
        "n_transits_per_bin": transits,
        "nside": nside,
        "nside_per_bin": nsides,
        "scheme": "NEST" if nest else "RING",
        "stored": stored,
        "file_roi": file_roi if file_roi else None,
    }
    return names, out_roi, data, meta


def read_maptree(path, roi: HealpixROI | None = None):
    """Read a HAL maptree (ROOT or HDF5): counts and background per analysis bin.

    Parameters
    ----------
    path : str or Path
        HAL maptree; ROOT or HDF5 is recognised from the file's content.
    roi : HealpixROI, optional
        Pixels to read. Its nside must be the maptree's; RING or NESTED ordering is converted (HAL
        maps are RING). Default: the pixels stored in the file for a partial (HDF5) maptree, or the
        pixels where any bin's counts or background is non-zero for a full-sky one (all ROOT
        maptrees), in the file's ordering.

    Returns
    -------
    counts, background : HealpixMaps
        Per bin (HAL's bin names, in the file's order) and pixel.
    meta : dict
        ``file``, ``format``, ``n_transits`` (the maximum over bins, as HAL: the map maker
        under-counts the live time of sparse bins), ``n_transits_per_bin``, ``nside``,
        ``nside_per_bin``, ``scheme``, ``stored`` (``"full-sky"`` or ``"partial"``) and ``file_roi``
        (the ROI dict stored by hawc_hal in HDF5 maptrees, or None).

    Raises
    ------
    HALFormatError
        Not a HAL maptree (FITS, response, ...), truncated, missing keys, or an ROI of another
        nside or outside the pixels stored.
    """
    path = Path(path).expanduser()
    fmt = _detect_format(path)
    names, out_roi, data, meta = (_read_maptree_root if fmt == "root" else _read_maptree_hdf5)(path, roi)
    counts = HealpixMaps(data[0], out_roi, tuple(names), "")
    background = HealpixMaps(data[1], out_roi, tuple(names), "")
    meta["bin_names"] = tuple(names)
    return counts, background, meta


def _root_dir_name(name: str) -> str:
    """HAWC's directory convention: ``nHit00`` ... ``nHit09`` for one-digit names."""
    return f"nHit0{name}" if len(name) == 1 and name.isdigit() else f"nHit{name}"


def write_maptree(path, counts: HealpixMaps, background: HealpixMaps, n_transits, overwrite: bool = False) -> Path:
    """Write counts and background maps as a HAL maptree, ROOT or HDF5 by the file suffix.

    Parameters
    ----------
    path : str or Path
        ``.root`` for ROOT; ``.hd5``, ``.hdf5``, ``.h5`` or ``.hdf`` for HDF5.
    counts, background : HealpixMaps
        Same ROI and bin names; bin names become HAL's analysis-bin names.
    n_transits : float or array_like
        Transits (days) of the data, one value or one per bin.
    overwrite : bool
        Replace an existing file.

    Returns
    -------
    Path
        ``path``.

    Notes
    -----
    ROOT: hawc_hal's current (uproot) reader's layout: ``BinInfo`` (``name`` as a string,
    ``totalDuration = 24 * n_transits`` hours) and per bin ``nHit<name>/data`` and ``nHit<name>/bkg``
    trees of one ``count`` (double) per pixel of the full RING sky, zero outside the ROI (one-digit
    names are written ``nHit0<name>``, HAWC's convention, which hawc_hal also looks up). uproot cannot
    write the ``Nside``/``Scheme`` entries of the trees' UserInfo that hawc_hal's old ROOT-library
    reader (before its move to uproot) needed. HDF5: pandas' fixed ``HDFStore`` layout that hawc_hal's
    ``MapTree.write`` produces (RING pixel ids of the ROI only), written with h5py and gzip instead of
    blosc:zstd compression; the ``/ROI`` metadata is a ``HealpixConeROI`` dict (model radius = data
    radius) for disc ROIs (:meth:`HealpixROI.from_disc`) and empty otherwise, in which case hawc_hal
    needs an explicit ``roi`` inside the stored pixels.
    """
    path = Path(path).expanduser()
    suffix = path.suffix.lower()
    if suffix not in ROOT_SUFFIXES + HDF5_SUFFIXES:
        raise HALFormatError(f"{path}: unknown maptree suffix {suffix!r}: use .root (ROOT) or .hd5/.hdf5/.h5 (HDF5)")
    if path.exists() and not overwrite:
        raise FileExistsError(f"{path} exists: pass overwrite=True to replace it")
    counts.check_compatible(background, what="background for the maptree")
    names = [str(n) for n in counts.bin_names]
    if len(set(names)) != len(names) or any(not n or "/" in n for n in names):
        raise ValueError(f"bin names must be unique, non-empty and without '/', got {names}")
    if suffix in ROOT_SUFFIXES and len({_root_dir_name(n) for n in names}) != len(names):
        raise ValueError(f"bin names {names} collide as ROOT directories (e.g. '1' and '01' are both nHit01)")
    transits = np.broadcast_to(np.asarray(n_transits, dtype=float), (len(names),)).copy()
    if not (np.all(np.isfinite(transits)) and np.all(transits > 0)):
        raise ValueError(f"n_transits must be positive and finite, got {n_transits}")
    roi = counts.roi
    ring = _roi_ring_ids(roi)
    order = np.argsort(ring)
    ring, obs, bkg = ring[order], counts.data[:, order], background.data[:, order]
    tmp = path.with_name(path.name + ".tmp")
    if suffix in ROOT_SUFFIXES:
        _write_maptree_root(tmp, names, roi.nside, ring, obs, bkg, transits)
    else:
        _write_maptree_hdf5(tmp, names, roi, ring, obs, bkg, transits)
    os.replace(tmp, path)
    return path


def _hours(n_transits: float) -> float:
    """``24 * n_transits`` hours, nudged by an ulp or two if needed so that reading (hours / 24) gives
    back exactly ``n_transits``."""
    hours = 24.0 * n_transits
    for candidate in (hours, np.nextafter(hours, np.inf), np.nextafter(hours, -np.inf)):
        if candidate / 24.0 == n_transits:
            return float(candidate)
    return hours


def _write_maptree_root(path: Path, names, nside, ring, obs, bkg, transits) -> None:
    import uproot

    npix = hp.nside2npix(nside)
    chunk = 1 << 20
    with uproot.recreate(path) as f:
        info = f.mktree("BinInfo", {"name": "string", "totalDuration": "float64"}, title="BinInfo")
        info.extend({"name": np.array(names), "totalDuration": np.array([_hours(n) for n in transits])})
        for b, name in enumerate(names):
            for kind, values in (("data", obs[b]), ("bkg", bkg[b])):
                full = np.zeros(npix)
                full[ring] = values
                tree = f.mktree(f"{_root_dir_name(name)}/{kind}", {"count": "float64"}, title=kind)
                for start in range(0, npix, chunk):
                    tree.extend({"count": full[start : start + chunk]})


def _write_maptree_hdf5(path: Path, names, roi: HealpixROI, ring, obs, bkg, transits) -> None:
    import h5py

    n_bins, n_pix = obs.shape
    values = np.stack([obs, bkg], axis=-1).reshape(n_bins * n_pix, 2)
    disc = all(k in roi.meta for k in ("center_ra", "center_dec", "radius_deg"))
    roi_meta = {}
    if disc:
        r = float(roi.meta["radius_deg"])
        roi_meta = {
            "ROI type": "HealpixConeROI",
            "ra": float(roi.meta["center_ra"]),
            "dec": float(roi.meta["center_dec"]),
            "data_radius_deg": r,
            "model_radius_deg": r,
        }
    with h5py.File(path, "w") as h5:
        _h5_root_attrs(h5)
        _write_pandas_frame(
            h5,
            "/analysis_bins",
            ["observation", "background"],
            [
                (np.array(names, dtype=object), np.repeat(np.arange(n_bins), n_pix)),
                (ring, np.tile(np.arange(n_pix), n_bins)),
            ],
            values,
        )
        _write_pandas_frame(
            h5,
            "/analysis_bins_meta",
            ["scheme", "n_transits", "nside"],
            np.array(names, dtype=object),
            np.column_stack([np.zeros(n_bins), transits, np.full(n_bins, float(roi.nside))]),
        )
        _write_pandas_empty_series(h5, "/ROI", roi_meta)


def maptree_dataset(maptree_path, response_path, roi: HealpixROI | None = None, name: str = "hawc"):
    """A skyfit :class:`~skyfit.dataset.Dataset` from a HAL maptree and response.

    Parameters
    ----------
    maptree_path, response_path : str or Path
        HAL maptree and response (ROOT or HDF5 each).
    roi : HealpixROI, optional
        Pixels to use (see :func:`read_maptree`).
    name : str
        Dataset name.

    Returns
    -------
    Dataset
        Counts and background of the maptree; the response at the ROI centre's declination for the
        maptree's ``n_transits``, restricted to the maptree's bins in the maptree's order (bins are
        matched by name).

    Raises
    ------
    HALFormatError
        When a maptree bin is not in the response (the message names both files and the bins).
    """
    from ..dataset import Dataset

    counts, background, meta = read_maptree(maptree_path, roi)
    _, dec = counts.roi.center()
    response = read_hal_response(response_path, dec_deg=dec, n_transits=meta["n_transits"])
    resp_names = list(response.bin_names)
    missing = [n for n in counts.bin_names if n not in resp_names]
    if missing:
        extra = [n for n in resp_names if n not in counts.bin_names]
        raise HALFormatError(
            f"analysis bins differ: maptree {maptree_path} has {missing} that response {response_path} lacks "
            f"(response-only bins: {extra}; maptree bins {list(counts.bin_names)}, response bins {resp_names}). "
            "Use the response made for this maptree's binning (bin names are compared as strings)"
        )
    idx = [resp_names.index(n) for n in counts.bin_names]
    response = response.select(idx)
    dmeta = {
        "maptree_file": str(maptree_path),
        "response_file": str(response_path),
        "background_file": str(maptree_path),
        "n_transits": meta["n_transits"],
        "dec_deg": float(dec),
        "unused_response_bins": [n for n in resp_names if n not in counts.bin_names],
    }
    return Dataset(name, counts, background, response, meta=dmeta)
