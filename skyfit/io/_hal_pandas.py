"""pandas' "fixed" ``HDFStore`` layout of HAL's HDF5 files (see :mod:`skyfit.io.hal`), read and written with h5py."""

from __future__ import annotations

import io
import pickle
from pathlib import Path

import numpy as np

from ._hal_common import HALFormatError

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
