"""JAX's settings: float64, and the persistent compilation cache (on by default, moved or turned off by
SKYFIT_JAX_CACHE): a second session compiles nothing the first compiled."""

import os
import subprocess
import sys
import warnings

import pytest

FIT = """
from skyfit import Fit, Likelihood, Models, PointSpatialModel, PowerLaw, Source
from skyfit.simulate import lhaaso_dataset, simulate_dataset
m = Models([Source("s", PointSpatialModel.create(83.6, 22.0), PowerLaw.create(3e-15, 3.0, 50.0))])
ds = simulate_dataset(m, lhaaso_dataset("KM2A", (83.6, 22.0), 1.0, nside=64, livetime_days=100), seed=1)
print(Fit(Likelihood(m, [ds])).run().valid)
"""


def _run(cache: str, tmp_path) -> str:
    env = {**os.environ, "SKYFIT_JAX_CACHE": cache}
    env.pop("JAX_COMPILATION_CACHE_DIR", None)
    out = subprocess.run([sys.executable, "-c", FIT], env=env, capture_output=True, text=True, cwd=tmp_path)
    assert out.returncode == 0, out.stderr
    return out.stdout.strip()


def test_a_second_session_compiles_nothing_new(tmp_path):
    cache = tmp_path / "jax-cache"
    assert _run(str(cache), tmp_path) == "True"
    first = sorted(p.name for p in cache.iterdir())
    assert len(first) >= 3  # the fit's value-and-gradient, Hessian, predicted counts ...
    assert _run(str(cache), tmp_path) == "True"
    assert sorted(p.name for p in cache.iterdir()) == first  # every compilation came from the cache


def test_the_cache_can_be_turned_off_and_moved(tmp_path, monkeypatch):
    import jax

    from skyfit import compilation_cache
    from skyfit._precision import default_cache_dir

    monkeypatch.setenv("SKYFIT_JAX_CACHE", "off")
    assert default_cache_dir() is None
    monkeypatch.setenv("SKYFIT_JAX_CACHE", str(tmp_path / "c"))
    assert default_cache_dir() == tmp_path / "c"
    monkeypatch.delenv("SKYFIT_JAX_CACHE")
    monkeypatch.setenv("XDG_CACHE_HOME", str(tmp_path / "xdg"))
    assert default_cache_dir() == tmp_path / "xdg" / "skyfit" / "jax"
    before = jax.config.jax_compilation_cache_dir
    try:
        assert compilation_cache(None) is None and jax.config.jax_compilation_cache_dir is None
        assert compilation_cache(tmp_path / "moved") == tmp_path / "moved" and (tmp_path / "moved").is_dir()
        blocker = tmp_path / "file"
        blocker.write_text("x")
        with pytest.warns(UserWarning, match="cannot be created.*SKYFIT_JAX_CACHE"):
            assert compilation_cache(blocker / "sub") is None
    finally:
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")
            compilation_cache(before)


def test_float64_is_on():
    import jax.numpy as jnp

    import skyfit._precision  # noqa: F401

    assert jnp.zeros(1).dtype == jnp.float64
