"""HAL files (see :mod:`skyfit.io.hal`): errors, file type detection and guarded opening of ROOT and HDF5 files."""

from __future__ import annotations

import struct
from pathlib import Path

HDF5_SUFFIXES = (".h5", ".hd5", ".hdf5", ".hdf")
ROOT_SUFFIXES = (".root",)


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
