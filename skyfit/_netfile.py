"""Network files shared by skyfit's networks: one ``.npz`` holding a JSON header and the arrays of an
equinox module, written atomically, read back with every failure named (file and fix)."""

from __future__ import annotations

import json
import zipfile
from pathlib import Path

import numpy as np

__all__ = ["save_net", "read_net", "restore_net"]


def save_net(path, header: dict, net) -> Path:
    """Write ``header`` (JSON-able) and the arrays of the equinox module ``net`` to ``path``."""
    import equinox as eqx
    import jax

    path = Path(path)
    leaves = jax.tree_util.tree_leaves(eqx.filter(net, eqx.is_array))
    header = {**header, "n_leaves": len(leaves)}
    arrays = {f"leaf_{i:03d}": np.asarray(a) for i, a in enumerate(leaves)}
    tmp = path.with_name(path.name + ".tmp")
    with open(tmp, "wb") as fh:
        np.savez(fh, header=np.frombuffer(json.dumps(header).encode(), np.uint8), **arrays)
    tmp.replace(path)
    return path


def read_net(path, what: str, fix: str, error=ValueError) -> tuple[dict, list]:
    """The header and arrays of a network file; a missing or unreadable file raises ``error`` naming
    ``path``, what it should be (``what``) and how to make one (``fix``)."""
    path = Path(path)
    if not path.is_file():
        raise error(f"{path}: no such {what} file; {fix}")
    try:
        with open(path, "rb") as fh, np.load(fh, allow_pickle=False) as z:  # the handle closes on a bad file too
            header = json.loads(bytes(z["header"]).decode())
            leaves = [z[f"leaf_{i:03d}"] for i in range(int(header["n_leaves"]))]
    except (OSError, ValueError, KeyError, TypeError, zipfile.BadZipFile, json.JSONDecodeError,
            UnicodeDecodeError) as exc:  # fmt: skip
        raise error(f"{path}: not a readable {what} file ({type(exc).__name__}: {exc}); {fix}") from None
    return header, leaves


def restore_net(skeleton, leaves: list, path, error=ValueError):
    """``skeleton`` (a freshly built module of the header's shape) with the file's arrays."""
    import equinox as eqx
    import jax

    params, static = eqx.partition(skeleton, eqx.is_array)
    ref = jax.tree_util.tree_leaves(params)
    if len(ref) != len(leaves) or any(a.shape != b.shape for a, b in zip(ref, leaves, strict=True)):
        raise error(f"{path}: network arrays do not match the header's network; the file is corrupt")
    return eqx.combine(jax.tree_util.tree_unflatten(jax.tree_util.tree_structure(params), leaves), static)
