"""Read and write the files of 3ML's HAL plugin (``hawc_hal``): maptrees and detector responses.

HAL (the HAWC Accelerated Likelihood plugin of 3ML, https://github.com/threeML/hawc_hal, BSD-3-Clause)
uses two files per analysis, each in a ROOT and an HDF5 form:

**Maptree** (observed counts and expected background per analysis bin, HEALPix RING, equatorial).

* ROOT: a ``BinInfo`` tree with one entry per analysis bin (branch ``name``, or ``id`` in old files,
  and ``totalDuration`` in hours: one transit is 24 h) and, per bin, a directory ``nHit<name>`` (or
  ``nHit0<name>`` for one-digit names) holding two trees ``data`` and ``bkg`` with one ``count``
  entry per pixel of the full sky; ``nside`` follows from the number of entries.
* HDF5: a pandas ``HDFStore`` (``format="fixed"``) with the data frames ``/analysis_bins`` (index:
  bin name x RING pixel id; columns ``observation``, ``background``), ``/analysis_bins_meta``
  (index: bin name; columns ``scheme``, ``n_transits``, ``nside``) and an empty series ``/ROI``
  whose ``metadata`` attribute holds the ROI as a dict (``{}`` for none).

**Response** (simulated detector response per declination band and analysis bin).

* ROOT: ``LogLogSpectrum`` (the simulated spectrum as a ``TF1`` of ``x = log10(E/TeV)`` giving
  ``log10(dN/dE / (TeV^-1 cm^-2 s^-1))``), ``DecBins`` (``simdec``, ``lowerEdge``, ``upperEdge``),
  ``AnalysisBins`` (``name`` or ``id``) and, per band ``dec_DD`` and bin ``nh_NN``, the histograms
  ``EnSig_dec<d>_nh<b>`` / ``EnBg_dec<d>_nh<b>`` (simulated signal / background events per
  transit, in bins of ``log10(E/TeV)``), ``PSF_dec<d>_nh<b>`` (angular distribution, deg) and its
  fit ``PSF_dec<d>_nh<b>_fit`` (a ``TF1`` of the angular distance ``r`` giving ``dN/dr``).
* HDF5: the data frames ``/dec_bins_definition``, ``/effective_area`` (per band and bin:
  ``sim_energy_bin_low``, ``sim_energy_bin_centers``, ``sim_energy_bin_hi``,
  ``sim_differential_photon_fluxes``, ``sim_signal_events_per_bin``) and ``/psf`` (``xs``, ``ys``:
  the PSF fit sampled at 500 log-spaced radii from 1e-3 to 15 deg; no rows for an unusable fit).

HAL's expected counts in an analysis bin for a point source of spectrum ``f`` are
``n_transits * sum_k S_k * f(E_k) / f_sim(E_k)``, with ``S_k`` the simulated signal events in true
energy bin ``k``, ``E_k`` the bin's logarithmic centre and ``f_sim`` the simulated spectrum there
(point evaluation, no integration across the bin: HAL's default). :func:`read_hal_response` puts
exactly that into skyfit's :class:`~skyfit.response.Response`: ``energy_true_tev = E_k`` and
``counts_matrix[d, b, k] = n_transits * S_k / f_sim(E_k)``, tabulated at the band centres (skyfit
interpolates linearly between them, as HAL does with ``interpolate=True``).

The HDF5 files are read and written with ``h5py`` alone (pandas and PyTables are not needed): the
writer lays out the same groups, data sets and attributes that pandas' ``HDFStore.put(...,
format="fixed")`` writes, so that pandas (and therefore ``hawc_hal``) reads them back. HAL itself
compresses with ``blosc:zstd``; reading such files needs the ``hdf5plugin`` package (imported when
installed); skyfit writes with gzip + shuffle, which every HDF5 reader decodes.
"""

from __future__ import annotations

import functools
import io
import os
import pickle
import struct
import warnings
from dataclasses import dataclass, field
from pathlib import Path

import healpy as hp
import numpy as np

from ..maps import HealpixMaps, HealpixROI

__all__ = [
    "HALFormatError",
    "HALPSFFallbackWarning",
    "read_hal_response",
    "hal_response_root_to_hdf5",
    "hal_response_table",
    "read_maptree",
    "write_maptree",
    "maptree_dataset",
]

HDF5_SUFFIXES = (".h5", ".hd5", ".hdf5", ".hdf")
ROOT_SUFFIXES = (".root",)

# HAL samples each PSF fit at these radii (deg) and normalises it on [xs[0], 15 deg]
_PSF_OUTER_RADIUS_DEG = 15.0
_PSF_XS = np.logspace(-3, np.log10(_PSF_OUTER_RADIUS_DEG), 500)
# fine radius grid (deg) on which the PSF is tabulated and the Gaussian mixture is fitted
_PSF_FINE_RAD = np.linspace(_PSF_XS[0], _PSF_OUTER_RADIUS_DEG, 7501)
_N_PSF_COMPONENTS = 3


class HALFormatError(ValueError):
    """A HAL maptree or response file is unreadable, incomplete, or does not fit the request.

    The message always names the file and says what to do about it.
    """


class HALPSFFallbackWarning(UserWarning):
    """The PSF fit of an analysis bin is unusable in the selected declination band; a neighbour's is used."""


# --------------------------------------------------------------------------------------------------
# file type detection and guarded opening
# --------------------------------------------------------------------------------------------------

_HDF5_MAGIC = b"\x89HDF\r\n\x1a\n"


def _detect_format(path: Path) -> str:
    """``"root"`` or ``"hdf5"`` from the file's first bytes; :class:`HALFormatError` otherwise."""
    if not path.exists():
        raise HALFormatError(f"{path}: no such file; check the path (HAL maptrees and responses are .root or .hd5)")
    if path.is_dir():
        raise HALFormatError(f"{path}: is a directory, not a HAL maptree or response file")
    with open(path, "rb") as fh:
        head = fh.read(1032)
    if head[:4] == b"root":
        return "root"
    # HDF5 allows a user block of 512 * 2^k bytes before the signature
    if any(head[o : o + 8] == _HDF5_MAGIC for o in (0, 512, 1024)):
        return "hdf5"
    if head[:9] == b"SIMPLE  =":
        what = "a FITS file (e.g. a skyfit/gammapy HEALPix map: read it with skyfit.maps.HealpixMaps.read)"
    elif not head:
        what = "empty"
    else:
        what = f"neither a ROOT nor an HDF5 file (it starts with {head[:8]!r})"
    raise HALFormatError(
        f"{path}: {what}. HAL maptrees and responses are ROOT (.root) or HDF5 (.hd5) files: "
        "pass the maptree/response that hawc_hal reads"
    )


def _check_root_complete(path: Path) -> None:
    """Compare the size recorded in the ROOT header (fEND) with the file's size."""
    with open(path, "rb") as fh:
        head = fh.read(24)
    if len(head) < 16:
        raise HALFormatError(f"{path}: truncated ROOT file ({len(head)} bytes): copy or download it again")
    version = struct.unpack(">i", head[4:8])[0]
    end = (
        struct.unpack(">q", head[12:20])[0]
        if version >= 1000000 and len(head) >= 20
        else struct.unpack(">i", head[12:16])[0]
    )
    size = path.stat().st_size
    if size < end:
        raise HALFormatError(
            f"{path}: truncated ROOT file ({size} bytes on disk, the header records {end}): "
            "the copy is incomplete; copy or download it again"
        )


def _open_root(path: Path):
    import uproot

    _check_root_complete(path)
    try:
        return uproot.open(path)
    except Exception as exc:  # uproot raises many types on corrupt input
        raise HALFormatError(f"{path}: cannot open as ROOT ({exc}); the file is corrupt: copy it again") from exc


def _open_hdf5(path: Path):
    import h5py

    try:  # registers the blosc/zstd filters that HAL's files use, when installed
        import hdf5plugin  # noqa: F401
    except ImportError:
        pass
    try:
        return h5py.File(path, "r")
    except OSError as exc:
        why = "truncated (the copy is incomplete)" if "truncated" in str(exc).lower() else "corrupt"
        raise HALFormatError(f"{path}: cannot open as HDF5 ({exc}); the file is {why}: copy it again") from exc


def _root_get(f, path: Path, key: str, what: str):
    try:
        return f[key]
    except Exception as exc:
        raise HALFormatError(f"{path}: no {key!r} in this ROOT file ({what}); {exc.__class__.__name__}") from exc


def _root_first(f, path: Path, keys, what: str):
    for key in keys:
        try:
            return f[key]
        except Exception:  # noqa: S112 - try the next spelling
            continue
    raise HALFormatError(f"{path}: none of {list(keys)} found in this ROOT file ({what}); the file is incomplete")


# --------------------------------------------------------------------------------------------------
# ROOT TF1 evaluation
# --------------------------------------------------------------------------------------------------

# ROOT 5 TFormula stores its expression in reverse Polish notation: fOper[i] = action << 23 | value
_TF_SHIFT = 23
_TF_MASK = (1 << _TF_SHIFT) - 1
_TF_UNARY = {
    10: np.cos, 11: np.sin, 12: np.tan, 13: np.arccos, 14: np.arcsin, 15: np.arctan, 21: np.square,
    22: np.sqrt, 30: np.log, 31: np.exp, 32: np.log10, 41: np.abs, 42: np.sign, 43: np.trunc,
    44: np.negative, 70: np.cosh, 71: np.sinh, 72: np.tanh, 73: np.arccosh, 74: np.arcsinh, 75: np.arctanh,
}  # fmt: skip
_TF_BINARY = {
    1: np.add, 2: np.subtract, 3: np.multiply, 4: np.divide, 5: np.fmod, 16: np.arctan2, 17: np.fmod,
    20: np.power, 24: np.minimum, 25: np.maximum,
}  # fmt: skip
_TF_PARAMETER, _TF_CONSTANT, _TF_VARIABLE, _TF_PI = 140, 141, 144, 40


class _TF1Unsupported(Exception):
    """The TF1's formula cannot be evaluated here."""


@dataclass(frozen=True)
class _TF1:
    """A 1D ROOT function: its parameters and, when readable, its ROOT 5 RPN formula."""

    name: str
    title: str
    params: np.ndarray
    param_names: tuple
    tokens: tuple = ()
    opers: tuple = ()
    consts: tuple = ()

    @classmethod
    def from_uproot(cls, obj) -> _TF1:
        members = obj.all_members

        def seq(key):
            value = members.get(key)
            return () if value is None else tuple(value)

        params = np.asarray(seq("fParams"), dtype=float)
        names = tuple(str(n) for n in seq("fNames"))
        tokens = tuple(str(t) for t in seq("fExpr"))
        opers = tuple(int(o) for o in seq("fOper"))
        consts = tuple(float(c) for c in seq("fConst"))
        return cls(str(members.get("fName", "")), str(members.get("fTitle", "")), params, names, tokens, opers, consts)

    @property
    def formula(self) -> str:
        """The formula in infix form (from the RPN tokens), or ``""`` when not stored."""
        if not self.opers:
            return ""
        stack = []
        try:
            for tok, op in zip(self.tokens, self.opers, strict=True):
                action = op >> _TF_SHIFT
                if action in _TF_BINARY:
                    b, a = stack.pop(), stack.pop()
                    stack.append(f"{tok}({a}, {b})" if tok.isalpha() else f"({a} {tok} {b})")
                elif action == 44:
                    stack.append(f"(-{stack.pop()})")
                elif action in _TF_UNARY:
                    stack.append(f"{tok}({stack.pop()})")
                else:
                    stack.append(tok)
            return stack[-1] if len(stack) == 1 else " ".join(self.tokens)
        except (IndexError, ValueError):
            return " ".join(self.tokens)

    def evaluate(self, x) -> np.ndarray:
        """Evaluate the stored RPN formula at ``x``; :class:`_TF1Unsupported` if it cannot be."""
        if not self.opers or len(self.opers) != len(self.tokens):
            raise _TF1Unsupported(f"TF1 {self.name!r} has no ROOT 5 formula (fOper) stored")
        x = np.asarray(x, dtype=float)
        stack: list = []
        for op in self.opers:
            action, value = op >> _TF_SHIFT, op & _TF_MASK
            if action == _TF_PARAMETER:
                if value >= len(self.params):
                    raise _TF1Unsupported(f"TF1 {self.name!r} uses parameter [{value}] of {len(self.params)}")
                stack.append(self.params[value])
            elif action == _TF_CONSTANT:
                if value >= len(self.consts):
                    raise _TF1Unsupported(f"TF1 {self.name!r} uses constant {value} of {len(self.consts)}")
                stack.append(self.consts[value])
            elif action == _TF_VARIABLE:
                if value != 0:
                    raise _TF1Unsupported(f"TF1 {self.name!r} uses variable {value} (only x is supported)")
                stack.append(x)
            elif action == _TF_PI:
                stack.append(np.pi)
            elif action in _TF_UNARY:
                stack.append(_TF_UNARY[action](stack.pop()))
            elif action in _TF_BINARY:
                b, a = stack.pop(), stack.pop()
                stack.append(_TF_BINARY[action](a, b))
            else:
                raise _TF1Unsupported(f"TF1 {self.name!r}: TFormula operation {action} is not supported")
        if len(stack) != 1:
            raise _TF1Unsupported(f"TF1 {self.name!r}: malformed formula (stack of {len(stack)})")
        return np.broadcast_to(np.asarray(stack[0], dtype=float), x.shape).copy()


def _hal_builtin_spectrum(tf1: _TF1, log10_e: np.ndarray) -> np.ndarray:
    """log10 of the simulated spectrum as hawc_hal evaluates it when it cannot read the formula."""
    p = tf1.params
    shape = tf1.title or tf1.name
    if shape == "SimplePowerLaw" and len(p) >= 2:
        return np.log10(p[0]) - p[1] * log10_e
    if shape == "CutOffPowerLaw" and len(p) >= 3:
        return np.log10(p[0]) - p[1] * log10_e - np.log10(np.e) * 10.0 ** (log10_e - np.log10(p[2]))
    raise _TF1Unsupported(f"unknown simulated spectrum shape {shape!r}")


def _hal_builtin_psf(params: np.ndarray, r: np.ndarray) -> np.ndarray:
    """hawc_hal's double-Gaussian PSF, ``dN/dr``, used when the TF1 formula cannot be read."""
    p = params
    return p[0] * r * (p[1] * np.exp(-r * r / (2 * p[2])) + (1 - p[1]) * np.exp(-r * r / (2 * p[3])))


# --------------------------------------------------------------------------------------------------
# pandas "fixed" HDFStore layout, with h5py
# --------------------------------------------------------------------------------------------------

_SAFE_PICKLE_GLOBALS = {
    ("numpy.core.multiarray", "scalar"),
    ("numpy._core.multiarray", "scalar"),
    ("numpy.core.multiarray", "_reconstruct"),
    ("numpy._core.multiarray", "_reconstruct"),
    ("numpy", "dtype"),
    ("numpy", "ndarray"),
    ("_codecs", "encode"),
}


class _SafeUnpickler(pickle.Unpickler):
    """Unpickles the plain values PyTables stores in attributes (no arbitrary classes)."""

    def find_class(self, module, name):
        if (module, name) in _SAFE_PICKLE_GLOBALS:
            return super().find_class(module, name)
        raise pickle.UnpicklingError(f"global {module}.{name} is not allowed in a HAL attribute")


def _attr_value(raw):
    """Decode one attribute as PyTables does: bytes -> str, protocol-0 pickles -> objects."""
    import h5py

    if isinstance(raw, h5py.Empty):
        return ""
    if isinstance(raw, np.ndarray) and raw.shape == ():
        raw = raw[()]
    if isinstance(raw, (bytes, np.bytes_)):
        b = bytes(raw)
        if b.endswith(b".") and b not in (b"0", b"0."):
            try:
                return _SafeUnpickler(io.BytesIO(b), encoding="latin1").load()
            except Exception:  # noqa: BLE001 - not a pickle after all
                pass
        return b.decode("utf-8", errors="replace")
    if isinstance(raw, np.generic):
        return raw.item()
    return raw


def _attrs(node) -> dict:
    return {k: _attr_value(node.attrs[k]) for k in node.attrs}


def _h5_string_attr(node, name: str, text, utf8: bool) -> None:
    """Fixed-length, null-terminated string attribute (what PyTables writes for str and pickles)."""
    import h5py

    data = text if isinstance(text, bytes) else str(text).encode("utf-8")
    if name in node.attrs:
        del node.attrs[name]
    if not data:
        node.attrs[name] = h5py.Empty("S1")
        return
    tid = h5py.h5t.C_S1.copy()
    tid.set_size(len(data))
    tid.set_strpad(h5py.h5t.STR_NULLTERM)
    tid.set_cset(h5py.h5t.CSET_UTF8 if utf8 else h5py.h5t.CSET_ASCII)
    attr = h5py.h5a.create(node.id, name.encode(), tid, h5py.h5s.create(h5py.h5s.SCALAR))
    attr.write(np.array(data, dtype=f"S{len(data)}"), mtype=tid)


def _h5_pickle_attr(node, name: str, value) -> None:
    _h5_string_attr(node, name, pickle.dumps(value, protocol=0), utf8=False)


def _h5_bool_attr(node, name: str, value: bool) -> None:
    """An 8-bit bitfield attribute, as PyTables stores numpy booleans."""
    import h5py

    if name in node.attrs:
        del node.attrs[name]
    attr = h5py.h5a.create(node.id, name.encode(), h5py.h5t.NATIVE_B8, h5py.h5s.create(h5py.h5s.SCALAR))
    attr.write(np.array(1 if value else 0, dtype=np.uint8))


def _h5_group(parent, name: str):
    g = parent.create_group(name)
    _h5_string_attr(g, "CLASS", "GROUP", utf8=True)
    _h5_string_attr(g, "TITLE", "", utf8=True)
    _h5_string_attr(g, "VERSION", "1.0", utf8=True)
    return g


def _h5_array(group, key: str, values: np.ndarray, transposed: bool = True) -> None:
    """A chunked, gzip+shuffle compressed array (PyTables' CArray), or PyTables' hack for empty ones."""
    values = np.asarray(values)
    if values.size == 0:  # pandas' write_array_empty: a one-element placeholder with the true shape/type
        ds = group.create_dataset(key, data=np.zeros((1,) * max(values.ndim, 1)))
        _h5_string_attr(ds, "CLASS", "ARRAY", utf8=True)
        _h5_string_attr(ds, "FLAVOR", "numpy", utf8=True)
        _h5_string_attr(ds, "TITLE", "", utf8=True)
        _h5_string_attr(ds, "VERSION", "2.4", utf8=True)
        _h5_string_attr(ds, "value_type", str(values.dtype), utf8=True)
        _h5_pickle_attr(ds, "shape", tuple(int(n) for n in values.shape))
        _h5_bool_attr(ds, "transposed", False)
        return
    ds = group.create_dataset(key, data=values, chunks=True, compression="gzip", compression_opts=4, shuffle=True)
    _h5_string_attr(ds, "CLASS", "CARRAY", utf8=False)
    _h5_string_attr(ds, "TITLE", "", utf8=False)
    _h5_string_attr(ds, "VERSION", "1.1", utf8=False)
    _h5_bool_attr(ds, "transposed", transposed)


def _index_array(values) -> tuple[np.ndarray, str]:
    """(on-disk array, pandas kind) for one index or level."""
    arr = np.asarray(values)
    if arr.dtype.kind in "US" or arr.dtype == object:
        enc = [str(v).encode("utf-8") for v in arr]
        width = max([len(e) for e in enc] + [1])
        return np.array(enc, dtype=f"S{width}"), "string"
    if arr.dtype.kind in "iu":
        return arr.astype(np.int64), "integer"
    if arr.dtype.kind == "f":
        return arr.astype(np.float64), "float"
    raise TypeError(f"index of dtype {arr.dtype} is not supported")


def _h5_index(group, key: str, values, level_of: str | None = None) -> None:
    arr, kind = _index_array(values)
    _h5_array(group, key, arr)
    ds = group[key]
    _h5_string_attr(ds, "kind", kind, utf8=True)
    _h5_pickle_attr(ds, "name", None)
    if kind == "string":
        _h5_string_attr(ds, "nan_rep", "", utf8=True)
    if level_of is not None:
        _h5_pickle_attr(ds, f"{level_of}_nameNone", None)


def _codes_dtype(n: int):
    for dt in (np.int8, np.int16, np.int32):
        if n < np.iinfo(dt).max:
            return dt
    return np.int64


def _write_pandas_frame(h5, key: str, columns, index, values, metadata=None) -> None:
    """Write a float64 data frame as pandas ``HDFStore.put(key, df, format="fixed")`` does.

    ``index`` is a 1D array (regular index) or a list of ``(level_values, codes)`` (MultiIndex).
    """
    g = _h5_group(h5, key.strip("/"))
    for name, text in (("pandas_type", "frame"), ("pandas_version", "0.15.2"), ("encoding", "UTF-8")):
        _h5_string_attr(g, name, text, utf8=True)
    _h5_string_attr(g, "errors", "strict", utf8=True)
    g.attrs.create("ndim", np.int64(2))
    g.attrs.create("nblocks", np.int64(1))
    _h5_string_attr(g, "axis0_variety", "regular", utf8=True)
    _h5_index(g, "axis0", np.asarray(columns))
    if isinstance(index, list):
        _h5_string_attr(g, "axis1_variety", "multi", utf8=True)
        g.attrs.create("axis1_nlevels", np.int64(len(index)))
        for i, (level, codes) in enumerate(index):
            _h5_index(g, f"axis1_level{i}", level, level_of="axis1")
            _h5_array(g, f"axis1_label{i}", np.asarray(codes, dtype=_codes_dtype(len(level))))
    else:
        _h5_string_attr(g, "axis1_variety", "regular", utf8=True)
        _h5_index(g, "axis1", index)
    values = np.asarray(values, dtype=np.float64).reshape(-1, len(columns))
    _h5_array(g, "block0_values", values)  # (n_rows, n_columns): pandas stores the block transposed
    _h5_string_attr(g, "block0_items_variety", "regular", utf8=True)
    _h5_index(g, "block0_items", np.asarray(columns))
    _h5_pickle_attr(g, "metadata", {} if metadata is None else metadata)


def _write_pandas_empty_series(h5, key: str, metadata) -> None:
    """An empty float64 series carrying ``metadata`` (HAL's ``/ROI`` node)."""
    g = _h5_group(h5, key.strip("/"))
    _h5_string_attr(g, "pandas_type", "series", utf8=True)
    _h5_string_attr(g, "pandas_version", "0.15.2", utf8=True)
    _h5_string_attr(g, "encoding", "UTF-8", utf8=True)
    _h5_string_attr(g, "errors", "strict", utf8=True)
    _h5_string_attr(g, "index_variety", "regular", utf8=True)
    _h5_array(g, "index", np.zeros(0, dtype=np.int64))
    _h5_string_attr(g["index"], "kind", "integer", utf8=True)
    _h5_pickle_attr(g["index"], "name", None)
    _h5_array(g, "values", np.zeros(0, dtype=np.float64))
    _h5_pickle_attr(g, "name", None)
    _h5_pickle_attr(g, "metadata", metadata)


def _h5_root_attrs(h5) -> None:
    _h5_string_attr(h5, "CLASS", "GROUP", utf8=False)
    _h5_string_attr(h5, "PYTABLES_FORMAT_VERSION", "2.1", utf8=False)
    _h5_string_attr(h5, "TITLE", "", utf8=False)
    _h5_string_attr(h5, "VERSION", "1.0", utf8=False)


def _read_h5_array(path: Path, node) -> np.ndarray:
    attrs = _attrs(node)
    shape = attrs.get("shape")
    if isinstance(shape, tuple) and int(np.prod(shape)) == 0:  # pandas' empty-array placeholder
        return np.empty(shape, dtype=attrs.get("value_type") or "float64")
    import h5py

    plist = node.id.get_create_plist()
    for i in range(plist.get_nfilters()):
        filter_id, _, _, filter_name = plist.get_filter(i)
        if not h5py.h5z.filter_avail(filter_id):
            raise HALFormatError(
                f"{path}: data set {node.name!r} is compressed with HDF5 filter {filter_id} "
                f"({filter_name.decode(errors='replace')}), which h5py cannot decode here (hawc_hal writes "
                "blosc:zstd): `pip install hdf5plugin` and read the file again"
            )
    try:
        data = node[()]
    except OSError as exc:
        raise HALFormatError(f"{path}: cannot read data set {node.name!r} ({exc}); the file is corrupt") from exc
    if data.dtype == object:
        raise HALFormatError(
            f"{path}: data set {node.name!r} holds pickled Python objects, which skyfit does not read; "
            "re-write the file with numeric columns"
        )
    return data


def _read_index(path: Path, group, key: str) -> np.ndarray:
    node = group[key]
    data = _read_h5_array(path, node)
    kind = _attrs(node).get("kind", "")
    if kind == "string" or data.dtype.kind == "S":
        return np.array([bytes(v).decode("utf-8") for v in np.ravel(data)], dtype=object)
    return np.ravel(data)


def _read_pandas_frame(path: Path, h5, key: str) -> dict:
    """Read a pandas "fixed" data frame: ``{"columns", "index" (list of per-row level arrays), "values",
    "metadata"}``."""
    if key not in h5:
        raise HALFormatError(f"{path}: no {key!r} in this HDF5 file; it is not the HAL file expected here")
    g = h5[key]
    attrs = _attrs(g)
    if attrs.get("pandas_type") != "frame":
        raise HALFormatError(
            f"{path}: {key!r} is not a pandas data frame in fixed format (pandas_type={attrs.get('pandas_type')!r}); "
            "re-write it with hawc_hal or skyfit"
        )
    try:
        columns = list(_read_index(path, g, "axis0"))
        if attrs.get("axis1_variety") == "multi":
            index = []
            for i in range(int(attrs["axis1_nlevels"])):
                level = _read_index(path, g, f"axis1_level{i}")
                codes = np.ravel(_read_h5_array(path, g[f"axis1_label{i}"])).astype(np.int64)
                index.append(level[codes])
        else:
            index = [_read_index(path, g, "axis1")]
        n_rows = len(index[0])
        values = np.full((n_rows, len(columns)), np.nan)
        for b in range(int(attrs.get("nblocks", 1))):
            items = list(_read_index(path, g, f"block{b}_items"))
            node = g[f"block{b}_values"]
            block = np.asarray(_read_h5_array(path, node), dtype=float)
            if not _attrs(node).get("transposed", False):
                block = block.T
            block = block.reshape(n_rows, len(items))
            for j, item in enumerate(items):
                values[:, columns.index(item)] = block[:, j]
    except HALFormatError:
        raise
    except (KeyError, ValueError, IndexError) as exc:
        raise HALFormatError(
            f"{path}: data frame {key!r} is incomplete or corrupt ({exc!r}); re-write the file"
        ) from exc
    return {"columns": columns, "index": index, "values": values, "metadata": attrs.get("metadata")}


def _column(path: Path, frame: dict, key: str, name: str) -> np.ndarray:
    if name not in frame["columns"]:
        raise HALFormatError(f"{path}: data frame {key!r} has no column {name!r} (columns: {frame['columns']})")
    return frame["values"][:, frame["columns"].index(name)]


def _unique_in_order(values) -> list:
    seen, out = set(), []
    for v in (str(v) for v in values):
        if v not in seen:
            seen.add(v)
            out.append(v)
    return out


# --------------------------------------------------------------------------------------------------
# responses
# --------------------------------------------------------------------------------------------------


@dataclass
class _ResponseTables:
    """Everything HAL keeps of a response, per band (sorted by centre) and analysis bin."""

    path: str
    fmt: str
    bin_names: tuple
    dec_center: np.ndarray  # (n_dec,)
    dec_min: np.ndarray
    dec_max: np.ndarray
    e_low: np.ndarray  # (n_true,) TeV
    e_center: np.ndarray
    e_high: np.ndarray
    sim_flux: np.ndarray  # (n_dec, n_bins, n_true) simulated dN/dE at e_center, TeV^-1 cm^-2 s^-1
    signal: np.ndarray  # (n_dec, n_bins, n_true) simulated signal events per transit
    n_sig: np.ndarray  # (n_dec, n_bins)
    n_bkg: np.ndarray
    psf_xs: list  # [d][b] radii (deg) or None for an unusable PSF fit
    psf_ys: list  # [d][b] dN/dr
    psf_source: str
    sim_spectrum: dict = field(default_factory=dict)
    # filled by _psf_products
    r68: np.ndarray | None = None
    mixtures: dict = field(default_factory=dict)  # (band, bin) -> fitted mixture, filled on demand
    density: np.ndarray | None = None  # (n_dec, n_bins, n_rad) deg^-2, on _PSF_FINE_RAD


def _ensig_layout(f, path: Path, d: int, name: str):
    dirs = [f"dec_{d:02d}/nh_{name.zfill(2)}", f"dec_{d:02d}/nh_{name}"]
    keys = lambda stem: [f"{dd}/{stem}" for dd in dict.fromkeys(dirs)]  # noqa: E731
    sig = _root_first(f, path, keys(f"EnSig_dec{d}_nh{name}"), f"signal histogram of band {d}, bin {name!r}")
    bkg = _root_first(f, path, keys(f"EnBg_dec{d}_nh{name}"), f"background histogram of band {d}, bin {name!r}")
    fit = _root_first(f, path, keys(f"PSF_dec{d}_nh{name}_fit"), f"PSF fit of band {d}, bin {name!r}")

    def hist():  # read only when the PSF fit cannot be evaluated
        for key in keys(f"PSF_dec{d}_nh{name}"):
            try:
                h = f[key]
            except Exception:  # noqa: S112
                continue
            return np.asarray(h.axis().edges(), float), h.values()
        return None

    return sig, bkg, fit, hist


def _read_response_root(path: Path) -> _ResponseTables:
    f = _open_root(path)
    try:
        for key in ("LogLogSpectrum", "DecBins", "AnalysisBins"):
            if key not in f:
                hint = " (is it a maptree? read it with read_maptree)" if "BinInfo" in f else ""
                raise HALFormatError(
                    f"{path}: no {key!r} in this ROOT file{hint}; a HAL response holds LogLogSpectrum, "
                    "DecBins and AnalysisBins: pass the response file produced for hawc_hal"
                )
        spectrum = _TF1.from_uproot(_root_get(f, path, "LogLogSpectrum", "simulated spectrum"))
        decs = _root_get(f, path, "DecBins", "declination bands")
        try:
            centre = np.asarray(decs["simdec"].array(library="np"), float)
            lower = np.asarray(decs["lowerEdge"].array(library="np"), float)
            upper = np.asarray(decs["upperEdge"].array(library="np"), float)
        except Exception as exc:
            raise HALFormatError(
                f"{path}: DecBins lacks a simdec/lowerEdge/upperEdge branch ({exc}); the response is incomplete"
            ) from exc
        bins_tree = _root_get(f, path, "AnalysisBins", "analysis bins")
        if "name" in bins_tree.keys():
            names = [str(v) for v in bins_tree["name"].array(library="np")]
        elif "id" in bins_tree.keys():
            names = [str(int(v)) for v in bins_tree["id"].array(library="np")]
        else:
            raise HALFormatError(
                f"{path}: AnalysisBins has neither a 'name' nor an 'id' branch; the response is incomplete"
            )
        n_dec, n_bins = len(centre), len(names)
        edges = None
        signal = bkg_sum = None
        psf_xs, psf_ys, sources = [], [], set()
        for d in range(n_dec):
            psf_xs.append([])
            psf_ys.append([])
            for b, name in enumerate(names):
                sig_h, bkg_h, fit, hist = _ensig_layout(f, path, d, name)
                e = np.asarray(sig_h.axis().edges(), float)
                if edges is None:
                    edges = e
                    signal = np.zeros((n_dec, n_bins, len(e) - 1))
                    bkg_sum = np.zeros((n_dec, n_bins))
                elif not np.array_equal(e, edges):
                    raise HALFormatError(
                        f"{path}: EnSig_dec{d}_nh{name} has other energy bins than EnSig_dec0 of the first bin; "
                        "skyfit needs one true-energy binning for the whole response"
                    )
                signal[d, b] = sig_h.values()
                bkg_sum[d, b] = float(np.sum(bkg_h.values()))
                xs, ys, source = _psf_samples(_TF1.from_uproot(fit), hist)
                sources.add(source)
                psf_xs[-1].append(xs)
                psf_ys[-1].append(ys)
    except HALFormatError:
        raise
    except Exception as exc:
        raise HALFormatError(f"{path}: cannot read the response ({exc!r}); the file is corrupt: copy it again") from exc
    finally:
        f.close()

    log_centre = 0.5 * (edges[:-1] + edges[1:])
    try:
        log_flux = spectrum.evaluate(log_centre)
        how = "the TF1's stored ROOT 5 formula"
    except _TF1Unsupported:
        try:
            log_flux = _hal_builtin_spectrum(spectrum, log_centre)
            how = f"hawc_hal's built-in {spectrum.title!r} shape (the TF1 formula is not stored)"
        except _TF1Unsupported as exc:
            raise HALFormatError(f"{path}: cannot evaluate LogLogSpectrum ({exc}); the response is not usable") from exc
    sim_flux = 10.0**log_flux
    if not np.all(np.isfinite(sim_flux)) or np.any(sim_flux <= 0):
        raise HALFormatError(f"{path}: LogLogSpectrum is not positive and finite on the simulated energies")

    order = np.argsort(centre, kind="stable")
    tables = _ResponseTables(
        path=str(path),
        fmt="root",
        bin_names=tuple(names),
        dec_center=centre[order],
        dec_min=lower[order],
        dec_max=upper[order],
        e_low=10.0 ** edges[:-1],
        e_center=10.0**log_centre,
        e_high=10.0 ** edges[1:],
        sim_flux=np.broadcast_to(sim_flux, signal.shape).copy(),
        signal=signal[order],
        n_sig=signal.sum(axis=2)[order],
        n_bkg=bkg_sum[order],
        psf_xs=[psf_xs[i] for i in order],
        psf_ys=[psf_ys[i] for i in order],
        psf_source=", ".join(sorted(sources)),
        sim_spectrum={
            "name": spectrum.name,
            "formula": spectrum.formula or spectrum.title,
            "params": spectrum.params.tolist(),
            "param_names": list(spectrum.param_names),
            "evaluated_with": how,
            "convention": "log10(dN/dE / (TeV^-1 cm^-2 s^-1)) as a function of x = log10(E / TeV)",
        },
    )
    return tables


def _psf_samples(fit: _TF1, hist) -> tuple:  # hist: callable returning (edges, values) or None
    """(xs, ys, source): the PSF's dN/dr sampled as HAL does, or (None, None, source) if unusable."""
    try:
        ys = fit.evaluate(_PSF_XS)
        source = "TF1 formula"
    except _TF1Unsupported:
        if len(fit.params) == 4:  # what hawc_hal assumes for every PSF fit when read with uproot
            ys = _hal_builtin_psf(fit.params, _PSF_XS)
            source = "hawc_hal double-Gaussian with the TF1 parameters"
        elif (table := hist()) is not None:
            edges, values = table
            centres = 0.5 * (edges[1:] + edges[:-1])
            dndr = values / np.diff(edges)
            return np.append(centres, _PSF_OUTER_RADIUS_DEG), np.append(dndr, 0.0), "PSF histogram"
        else:
            return None, None, "none"
    grid = np.linspace(0.0, _PSF_OUTER_RADIUS_DEG, 3001)
    try:
        integral = np.trapezoid(
            fit.evaluate(grid) if source == "TF1 formula" else _hal_builtin_psf(fit.params, grid), grid
        )
    except _TF1Unsupported:
        integral = np.nan
    if not (np.all(np.isfinite(ys)) and np.isfinite(integral) and integral > 0):
        return None, None, source  # HAL's InvalidPSF: a fit with no positive integral
    return _PSF_XS.copy(), ys, source


def _read_response_hdf5(path: Path) -> _ResponseTables:
    with _open_hdf5(path) as h5:
        missing = [k for k in ("/dec_bins_definition", "/effective_area", "/psf") if k not in h5]
        if missing:
            hint = " (is it a maptree? read it with read_maptree)" if "/analysis_bins" in h5 else ""
            raise HALFormatError(
                f"{path}: no {missing[0]!r} in this HDF5 file{hint}; a HAL response holds /dec_bins_definition, "
                "/effective_area and /psf: pass the response written by hawc_hal or hal_response_root_to_hdf5"
            )
        meta = _read_pandas_frame(path, h5, "/dec_bins_definition")
        eff = _read_pandas_frame(path, h5, "/effective_area")
        psf = _read_pandas_frame(path, h5, "/psf")
    key = "/dec_bins_definition"
    if len(meta["index"]) != 2 or len(eff["index"]) != 3 or len(psf["index"]) != 3:
        raise HALFormatError(f"{path}: the response data frames do not have HAL's (declination, bin[, row]) index")
    m_dec, m_name = meta["index"][0].astype(float), meta["index"][1].astype(str)
    decs = sorted({float(v) for v in m_dec})
    names = _unique_in_order(m_name)
    n_dec, n_bins = len(decs), len(names)
    dec_min, dec_max = np.zeros(n_dec), np.zeros(n_dec)
    n_sig, n_bkg = np.zeros((n_dec, n_bins)), np.zeros((n_dec, n_bins))
    mcols = {c: _column(path, meta, key, c) for c in ("min_dec", "max_dec", "n_sim_signal_events", "n_sim_bkg_events")}
    for i, (dv, nv) in enumerate(zip(m_dec, m_name, strict=True)):
        d, b = decs.index(float(dv)), names.index(nv)
        dec_min[d], dec_max[d] = mcols["min_dec"][i], mcols["max_dec"][i]
        n_sig[d, b], n_bkg[d, b] = mcols["n_sim_signal_events"][i], mcols["n_sim_bkg_events"][i]
    e_dec, e_name = eff["index"][0].astype(float), eff["index"][1].astype(str)
    cols = {
        c: _column(path, eff, "/effective_area", c)
        for c in (
            "sim_energy_bin_low",
            "sim_energy_bin_centers",
            "sim_energy_bin_hi",
            "sim_differential_photon_fluxes",
            "sim_signal_events_per_bin",
        )
    }
    first = (e_dec == decs[0]) & (e_name == names[0])
    e_center = cols["sim_energy_bin_centers"][first]
    n_true = len(e_center)
    signal = np.zeros((n_dec, n_bins, n_true))
    sim_flux = np.zeros((n_dec, n_bins, n_true))
    for d, dv in enumerate(decs):
        for b, nv in enumerate(names):
            rows = (e_dec == dv) & (e_name == nv)
            if rows.sum() != n_true or not np.array_equal(cols["sim_energy_bin_centers"][rows], e_center):
                raise HALFormatError(
                    f"{path}: /effective_area of band {dv} deg, bin {nv!r} has other true-energy bins than the "
                    "first; skyfit needs one true-energy binning for the whole response"
                )
            signal[d, b] = cols["sim_signal_events_per_bin"][rows]
            sim_flux[d, b] = cols["sim_differential_photon_fluxes"][rows]
    p_dec, p_name = psf["index"][0].astype(float), psf["index"][1].astype(str)
    xs_all, ys_all = _column(path, psf, "/psf", "xs"), _column(path, psf, "/psf", "ys")
    psf_xs = [[None] * n_bins for _ in range(n_dec)]
    psf_ys = [[None] * n_bins for _ in range(n_dec)]
    for d, dv in enumerate(decs):
        for b, nv in enumerate(names):
            rows = (p_dec == dv) & (p_name == nv)
            if rows.any():
                psf_xs[d][b], psf_ys[d][b] = xs_all[rows], ys_all[rows]
    return _ResponseTables(
        path=str(path),
        fmt="hdf5",
        bin_names=tuple(names),
        dec_center=np.array(decs),
        dec_min=dec_min,
        dec_max=dec_max,
        e_low=cols["sim_energy_bin_low"][first],
        e_center=e_center,
        e_high=cols["sim_energy_bin_hi"][first],
        sim_flux=sim_flux,
        signal=signal,
        n_sig=n_sig,
        n_bkg=n_bkg,
        psf_xs=psf_xs,
        psf_ys=psf_ys,
        psf_source="HDF5 /psf table (the PSF fit sampled by hawc_hal)",
        sim_spectrum={"convention": "sim_differential_photon_fluxes (TeV^-1 cm^-2 s^-1) at sim_energy_bin_centers"},
    )


def _psf_products(tables: _ResponseTables) -> None:
    """Per band and bin: 68 % radius (as HAL computes it) and the PSF density on the fine grid."""
    from scipy.interpolate import InterpolatedUnivariateSpline
    from scipy.optimize import brentq

    n_dec, n_bins = tables.signal.shape[:2]
    r = _PSF_FINE_RAD
    r68 = np.full((n_dec, n_bins), np.nan)
    density = np.zeros((n_dec, n_bins, len(r)))
    for d in range(n_dec):
        for b in range(n_bins):
            xs, ys = tables.psf_xs[d][b], tables.psf_ys[d][b]
            if xs is None or len(xs) < 4:
                continue
            spline = InterpolatedUnivariateSpline(xs, ys, k=2, ext="zeros")
            outer = min(_PSF_OUTER_RADIUS_DEG, float(xs[-1]))
            anti = spline.antiderivative()
            total = anti(outer) - anti(xs[0])
            if not (np.isfinite(total) and total > 0):
                tables.psf_xs[d][b] = tables.psf_ys[d][b] = None
                continue
            r68[d, b] = brentq(lambda x: (anti(x) - anti(xs[0])) / total - 0.68, xs[0], outer, xtol=1e-10)  # noqa: B023
            dndr = np.clip(np.where(r <= outer, spline(r), 0.0), 0.0, None)
            density[d, b] = dndr / (2 * np.pi * r) / total
    tables.r68, tables.density = r68, density
    for arr in (r68, density):
        arr.setflags(write=False)


def _band_mixture(tables: _ResponseTables, d: int, b: int) -> tuple:
    """(weights, sigma_deg, max containment error) of the Gaussian mixture fitted to one PSF (cached).

    The PSF is a 2-Gaussian fit in HAL, so the 3-component fit can leave a component of negligible
    weight with a width far beyond the 15 deg the PSF is defined on; such a component is given the
    width of the widest other one (which changes the containment by less than its weight). The
    error returned is the largest difference between the mixture's containment and HAL's PSF
    containment over the whole 1e-3..15 deg grid.
    """
    from ..response.hawc import fit_gaussian_mixture_psf

    key = (d, b)
    if key not in tables.mixtures:
        r, dens = _PSF_FINE_RAD, tables.density[d, b]
        w, s, _ = fit_gaussian_mixture_psf(r, dens, n_components=_N_PSF_COMPONENTS)
        s = np.array(s, dtype=float)
        inside = s <= _PSF_OUTER_RADIUS_DEG
        if inside.any() and not inside.all():
            s[~inside] = s[inside].max()
        integrand = 2 * np.pi * r * dens
        target = np.concatenate([[0.0], np.cumsum(0.5 * (integrand[1:] + integrand[:-1]) * np.diff(r))])
        model = np.sum(w * -np.expm1(-0.5 * (r[:, None] / s) ** 2), axis=1) - np.sum(
            w * -np.expm1(-0.5 * (r[0] / s) ** 2)
        )
        tables.mixtures[key] = (np.asarray(w, float), s, float(np.max(np.abs(model - target))))
    return tables.mixtures[key]


@functools.lru_cache(maxsize=4)
def _load_response(path_str: str, mtime_ns: int, size: int) -> _ResponseTables:
    path = Path(path_str)
    fmt = _detect_format(path)
    tables = _read_response_root(path) if fmt == "root" else _read_response_hdf5(path)
    _psf_products(tables)
    for name in ("dec_center", "dec_min", "dec_max", "e_low", "e_center", "e_high", "sim_flux", "signal"):
        getattr(tables, name).setflags(write=False)
    return tables


def _response_tables(path) -> _ResponseTables:
    path = Path(path).expanduser()
    _detect_format(path)
    st = path.stat()
    return _load_response(str(path.resolve()), st.st_mtime_ns, st.st_size)


def read_hal_response(path, dec_deg: float | None = None, n_transits: float = 1.0):
    """Read a HAL detector response (ROOT or HDF5) into a skyfit :class:`~skyfit.response.Response`.

    Parameters
    ----------
    path : str or Path
        HAL response file; ROOT or HDF5 is recognised from the file's content, not its suffix.
    dec_deg : float, optional
        Declination (deg) of the source/ROI: the PSF of the declination band nearest to it is used
        (skyfit's PSF has no declination dependence). Default: the band with the most simulated
        signal events (sources transiting near zenith). Must lie within the response's bands.
    n_transits : float
        Number of transits (days) of the data the response is used with; HAL's simulated events
        are per transit, so ``counts_matrix`` is proportional to it.

    Returns
    -------
    Response
        ``bin_names``: HAL's analysis-bin names; ``energy_true_tev``: logarithmic centres of the
        simulated true-energy bins; ``dec_nodes_deg``: band centres; ``counts_matrix[d, b, k] =
        n_transits * S_k / f_sim(E_k)`` (HAL's convention, see the module docstring); ``psf``: a
        3-component Gaussian mixture fitted (through its containment curve) to the PSF of the
        selected band, normalised like HAL on [0, 15 deg]; ``psf_table``: that PSF tabulated.
        ``meta`` holds ``instrument``, ``file``, ``format``, ``dec_bands`` (``center``, ``min``,
        ``max``), ``psf_dec_band`` (index and centre used), ``psf_r68_deg`` (n_dec, n_bins) from the
        PSF fits as HAL computes it (NaN where the fit is unusable), ``psf_fit_max_containment_error``
        (per bin, of the mixture fit), ``psf_source``, ``sim_spectrum``, ``n_sim_signal_events``,
        ``n_sim_bkg_events``, ``energy_true_edges_tev`` and ``n_transits``.

    Raises
    ------
    HALFormatError
        The file is not a HAL response (FITS, maptree, ...), is truncated, lacks a key, or
        ``dec_deg`` is outside its declination bands.

    Warns
    -----
    HALPSFFallbackWarning
        When the PSF fit of a bin is unusable in the selected band (HAL's ``InvalidPSF``, at the
        edges of the field of view); the nearest band with a usable fit is used for that bin.

    Notes
    -----
    The PSF comes from the stored fit ``PSF_dec<d>_nh<b>_fit``: its ROOT 5 TFormula (reverse Polish
    expression with parameters, stored in the file and read with uproot) is evaluated directly. If a
    file stores no such formula (ROOT 6 TF1s), hawc_hal's own double-Gaussian with the TF1's 4
    parameters is used, as hawc_hal does; failing that, the ``PSF_dec<d>_nh<b>`` histogram.
    ``meta["psf_source"]`` says which.
    """
    path = Path(path).expanduser()
    t = _response_tables(path)
    n_dec, n_bins = t.signal.shape[:2]
    if dec_deg is None:
        band = int(np.argmax(t.n_sig.sum(axis=1)))
    else:
        lo, hi = float(np.min(t.dec_min)), float(np.max(t.dec_max))
        if not (np.isfinite(dec_deg) and lo <= dec_deg <= hi):
            raise HALFormatError(
                f"{path}: declination {dec_deg} deg is outside the response's bands [{lo}, {hi}] deg; "
                "use a source/ROI inside them or a response simulated for that declination"
            )
        band = int(np.argmin(np.abs(t.dec_center - dec_deg)))
    if not (np.isfinite(n_transits) and n_transits > 0):
        raise ValueError(f"n_transits must be positive and finite, got {n_transits}")

    psf_band = np.full(n_bins, band)
    for b in range(n_bins):
        if np.isfinite(t.r68[band, b]):
            continue
        usable = np.nonzero(np.isfinite(t.r68[:, b]))[0]
        if usable.size == 0:
            raise HALFormatError(
                f"{path}: analysis bin {t.bin_names[b]!r} has no usable PSF fit in any declination band; "
                "drop this bin (Response.select) or use another response file"
            )
        psf_band[b] = usable[np.argmin(np.abs(t.dec_center[usable] - t.dec_center[band]))]
        warnings.warn(
            f"{path}: the PSF fit of bin {t.bin_names[b]!r} is unusable in the band at {t.dec_center[band]} deg; "
            f"using the band at {t.dec_center[psf_band[b]]} deg for its PSF",
            HALPSFFallbackWarning,
            stacklevel=2,
        )
    bins = np.arange(n_bins)
    from ..response import GaussianMixturePSF, Response, TabulatedPSF

    fits = [_band_mixture(t, int(psf_band[b]), b) for b in bins]
    psf = GaussianMixturePSF(np.array([f[0] for f in fits]), np.array([f[1] for f in fits]))
    table = TabulatedPSF(_PSF_FINE_RAD.copy(), t.density[psf_band, bins].copy())
    counts_matrix = n_transits * t.signal / t.sim_flux
    meta = {
        "instrument": "HAWC",
        "file": str(path),
        "format": t.fmt,
        "reader": "skyfit.io.hal.read_hal_response",
        "dec_bands": {"center": t.dec_center.copy(), "min": t.dec_min.copy(), "max": t.dec_max.copy()},
        "psf_dec_band": {"index": band, "center_deg": float(t.dec_center[band])},
        "psf_dec_band_per_bin_deg": t.dec_center[psf_band].copy(),
        "psf_r68_deg": t.r68.copy(),
        "psf_fit_max_containment_error": np.array([f[2] for f in fits]),
        "psf_source": t.psf_source,
        "sim_spectrum": dict(t.sim_spectrum),
        "n_sim_signal_events": t.n_sig.copy(),
        "n_sim_bkg_events": t.n_bkg.copy(),
        "energy_true_edges_tev": np.append(t.e_low, t.e_high[-1]),
        "n_transits": float(n_transits),
        "convention": "counts = n_transits * sum_k S_k f(E_k) / f_sim(E_k), E_k the log-centres (HAL's default)",
    }
    return Response(
        bin_names=t.bin_names,
        energy_true_tev=t.e_center.copy(),
        dec_nodes_deg=t.dec_center.copy(),
        counts_matrix=counts_matrix,
        psf=psf,
        psf_table=table,
        meta=meta,
    )


def hal_response_root_to_hdf5(root_path, h5_path, overwrite: bool = False) -> Path:
    """Convert a ROOT HAL response to HAL's HDF5 layout (what hawc_hal's ``HAWCResponse.write`` writes).

    Parameters
    ----------
    root_path : str or Path
        HAL response in ROOT form.
    h5_path : str or Path
        Output file (``.hd5`` or ``.hdf5`` so that hawc_hal recognises it).
    overwrite : bool
        Replace an existing ``h5_path``.

    Returns
    -------
    Path
        ``h5_path``.

    Notes
    -----
    Written with h5py in pandas' fixed ``HDFStore`` layout (gzip instead of HAL's blosc:zstd
    compression). PSF fits are sampled at HAL's 500 radii; unusable fits get no rows, as in HAL.
    """
    root_path, h5_path = Path(root_path).expanduser(), Path(h5_path).expanduser()
    if _detect_format(root_path) != "root":
        raise HALFormatError(f"{root_path}: not a ROOT file; hal_response_root_to_hdf5 converts ROOT responses")
    if h5_path.exists() and not overwrite:
        raise FileExistsError(f"{h5_path} exists: pass overwrite=True to replace it")
    t = _response_tables(root_path)
    n_dec, n_bins, n_true = t.signal.shape
    keys_dec = np.repeat(t.dec_center, n_bins)
    dec_level, name_level = t.dec_center, np.array(t.bin_names, dtype=object)
    dec_codes, name_codes = np.repeat(np.arange(n_dec), n_bins), np.tile(np.arange(n_bins), n_dec)
    meta_values = np.column_stack(
        [np.repeat(t.dec_min, n_bins), np.repeat(t.dec_max, n_bins), keys_dec, t.n_sig.ravel(), t.n_bkg.ravel()]
    )
    eff_values = np.concatenate(
        [
            np.column_stack([t.e_low, t.e_center, t.e_high, t.sim_flux[d, b], t.signal[d, b]])
            for d in range(n_dec)
            for b in range(n_bins)
        ]
    )
    psf_rows, psf_codes = [], ([], [], [])
    n_psf = 0
    for d in range(n_dec):
        for b in range(n_bins):
            xs, ys = t.psf_xs[d][b], t.psf_ys[d][b]
            if xs is None:
                continue
            psf_rows.append(np.column_stack([xs, ys]))
            psf_codes[0].append(np.full(len(xs), d))
            psf_codes[1].append(np.full(len(xs), b))
            psf_codes[2].append(np.arange(len(xs)))
            n_psf = max(n_psf, len(xs))
    tmp = h5_path.with_name(h5_path.name + ".tmp")
    import h5py

    with h5py.File(tmp, "w") as h5:
        _h5_root_attrs(h5)
        _write_pandas_frame(
            h5,
            "/dec_bins_definition",
            ["min_dec", "max_dec", "declination_center", "n_sim_signal_events", "n_sim_bkg_events"],
            [(dec_level, dec_codes), (name_level, name_codes)],
            meta_values,
        )
        _write_pandas_frame(
            h5,
            "/effective_area",
            [
                "sim_energy_bin_low",
                "sim_energy_bin_centers",
                "sim_energy_bin_hi",
                "sim_differential_photon_fluxes",
                "sim_signal_events_per_bin",
            ],
            [
                (dec_level, np.repeat(dec_codes, n_true)),
                (name_level, np.repeat(name_codes, n_true)),
                (np.arange(n_true), np.tile(np.arange(n_true), n_dec * n_bins)),
            ],
            eff_values,
        )
        _write_pandas_frame(
            h5,
            "/psf",
            ["xs", "ys"],
            [
                (dec_level, np.concatenate(psf_codes[0])),
                (name_level, np.concatenate(psf_codes[1])),
                (np.arange(n_psf), np.concatenate(psf_codes[2])),
            ],
            np.concatenate(psf_rows),
        )
    os.replace(tmp, h5_path)
    return h5_path


def hal_response_table(
    path, dec_deg: float = 22.0, n_transits: float = 1.0, amplitude: float = 1e-11, index: float = 2.6
) -> str:
    """Per analysis bin: expected counts for a power law and PSF 68 % radii, as a text table.

    Parameters
    ----------
    path : str or Path
        HAL response (ROOT or HDF5).
    dec_deg : float
        Source declination (deg); counts are interpolated between bands like HAL, the PSF is that
        of the nearest band.
    n_transits : float
        Transits of exposure.
    amplitude, index : float
        Power law ``dN/dE = amplitude * (E / 1 TeV)^-index`` in TeV^-1 cm^-2 s^-1.

    Returns
    -------
    str
        One line per bin: name, expected counts, r68 of the fitted mixture and of HAL's PSF fit (deg).
    """
    resp = read_hal_response(path, dec_deg=dec_deg, n_transits=n_transits)
    counts = resp.counts_matrix_at(dec_deg) @ (amplitude * resp.energy_true_tev**-index)
    band = resp.meta["psf_dec_band"]["index"]
    lines = [
        f"# {Path(path).name}: dec {dec_deg} deg (PSF band at {resp.meta['psf_dec_band']['center_deg']} deg), "
        f"{n_transits} transit(s), dN/dE = {amplitude:g} (E/TeV)^-{index} TeV^-1 cm^-2 s^-1",
        f"{'bin':>6} {'counts':>12} {'r68_mix_deg':>12} {'r68_fit_deg':>12}",
    ]
    for b, name in enumerate(resp.bin_names):
        r_mix = resp.psf.containment_radius(0.68, b)
        lines.append(f"{name:>6} {counts[b]:12.5g} {r_mix:12.4f} {resp.meta['psf_r68_deg'][band, b]:12.4f}")
    lines.append(f"{'total':>6} {counts.sum():12.5g}")
    return "\n".join(lines)


# --------------------------------------------------------------------------------------------------
# maptrees
# --------------------------------------------------------------------------------------------------


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
