"""JAX settings for everything skyfit computes: float64 (likelihood sums, fits, networks' inputs), and the
persistent compilation cache.

``import skyfit`` loads its API lazily, so the settings are made, on import of this module, by each part
that computes with JAX (the models, detection, g/h separation; the likelihood and the TS maps make it
themselves) rather than by the package.

The compilation cache: XLA's compiled functions are kept on disk, so a second run of any command, or a
second Python session, compiles nothing it compiled before (a first fit of the HAWC Crab: 1.15 s with an
empty cache, 0.47 s with a warm one; the main job 160 s and 100 s: ``benchmarks/speed.py``). It is on by
default in ``$XDG_CACHE_HOME/skyfit/jax`` (else ``~/.cache/skyfit/jax``); ``SKYFIT_JAX_CACHE=DIR`` moves it,
``SKYFIT_JAX_CACHE=off`` turns it off, and
:func:`compilation_cache` does either from Python. A cache folder JAX was already given
(``JAX_COMPILATION_CACHE_DIR``) is left as it is.
"""

import os
import warnings
from pathlib import Path

import jax

__all__ = ["X64", "compilation_cache", "default_cache_dir"]

jax.config.update("jax_enable_x64", True)
X64 = True

_OFF = ("", "0", "off", "none", "false", "no")


def default_cache_dir() -> Path | None:
    """Where the compilation cache goes by default: ``SKYFIT_JAX_CACHE`` (None when it says off), else
    ``$XDG_CACHE_HOME/skyfit/jax`` or ``~/.cache/skyfit/jax``."""
    value = os.environ.get("SKYFIT_JAX_CACHE")
    if value is not None:
        return None if value.strip().lower() in _OFF else Path(value).expanduser()
    base = os.environ.get("XDG_CACHE_HOME") or Path.home() / ".cache"
    return Path(base) / "skyfit" / "jax"


def compilation_cache(path="default") -> Path | None:
    """Keep JAX's compiled functions in the folder ``path`` (``"default"``: :func:`default_cache_dir`;
    ``None``: no persistent cache from now on). Every compiled function is kept, however quick its
    compilation (the catalogue compiles many small ones). Returns the folder in use, or None."""
    folder = default_cache_dir() if path == "default" else None if path is None else Path(path).expanduser()
    if folder is not None:
        try:
            folder.mkdir(parents=True, exist_ok=True)
        except OSError as exc:
            warnings.warn(f"JAX compilation cache {folder} cannot be created ({exc}): compiling without it; "
                          "set SKYFIT_JAX_CACHE to a writable folder, or to off", stacklevel=2)  # fmt: skip
            folder = None
    from jax.experimental.compilation_cache import compilation_cache as _cc

    _cc.reset_cache()  # a cache JAX already opened keeps its folder otherwise
    jax.config.update("jax_compilation_cache_dir", None if folder is None else str(folder))
    if folder is not None:
        jax.config.update("jax_persistent_cache_min_compile_time_secs", 0.0)
        jax.config.update("jax_persistent_cache_min_entry_size_bytes", 0)
    return folder


if not os.environ.get("JAX_COMPILATION_CACHE_DIR"):
    compilation_cache()
