"""A per-event estimate of the angular error, for PSF event classes (issue #29).

An MLP (equinox, trained with optax) on the reconstructed observables of the gammas alone learns the
mean of log10(angular error) given the observables (squared-error loss; a random 20 % of the training
gammas held out, the epoch with the lowest held-out loss kept). Its output orders events by how well they
are likely reconstructed; :func:`skyfit.ghsep.class_edges` cuts its quartiles per analysis bin.
"""

from __future__ import annotations

import functools
from dataclasses import dataclass, field

import numpy as np

from ._features import FEATURES, GHSepError, feature_matrix

__all__ = ["PSFEstimator", "train_psf_estimator"]


@functools.lru_cache(maxsize=1)
def _predict_fn():
    """One jitted evaluation for every estimator (a new ``jax.jit`` per call compiled again each time)."""
    import equinox as eqx
    import jax

    return eqx.filter_jit(lambda net, x: jax.vmap(net)(x))


@dataclass
class PSFEstimator:
    """``predict(table)``: the estimated log10 angular error (deg) of each event."""

    instrument: str
    features: tuple
    net: object
    mean: np.ndarray
    std: np.ndarray
    meta: dict = field(default_factory=dict)

    def predict(self, table, where: str = "event table") -> np.ndarray:
        import jax.numpy as jnp

        x = ((feature_matrix(table, self.features, where) - self.mean) / self.std).astype(np.float32)
        if len(x) == 0:
            return np.zeros(0)
        return np.asarray(_predict_fn()(self.net, jnp.asarray(x)), np.float64)


def train_psf_estimator(
    gammas: dict,
    instrument: str,
    features=None,
    epochs: int = 30,
    batch: int = 256,
    learning_rate: float = 2e-3,
    width: int = 32,
    depth: int = 2,
    seed: int = 0,
) -> PSFEstimator:
    """Train the angular-error estimator on a table of simulated ``gammas`` (their ``ANGULAR_ERROR``
    column, deg) with the instrument's classifier features by default. Gammas only: the estimate must not
    learn what separates gammas from hadrons."""
    import equinox as eqx
    import jax
    import jax.numpy as jnp
    import optax

    instrument = instrument.upper()
    features = tuple(FEATURES[instrument] if features is None else features)
    if "ANGULAR_ERROR" not in gammas:
        raise GHSepError("the PSF estimator trains on simulated gammas with an ANGULAR_ERROR column (deg)")
    err = np.asarray(gammas["ANGULAR_ERROR"], float)
    ok = np.isfinite(err) & (err > 0)
    if ok.sum() < 100:
        raise GHSepError(f"{int(ok.sum())} gammas with a finite angular error: too few to train a PSF estimator")
    x = feature_matrix({k: np.asarray(v)[ok] for k, v in gammas.items()}, features, "PSF training gammas")
    y = np.log10(err[ok]).astype(np.float32)
    mean = x.mean(axis=0)
    std = np.where(x.std(axis=0) > 0, x.std(axis=0), 1.0)
    xs = ((x - mean) / std).astype(np.float32)
    rng = np.random.default_rng(seed)
    idx = rng.permutation(len(xs))
    n_val = max(len(xs) // 5, 1)
    val, tr = idx[:n_val], idx[n_val:]
    net = eqx.nn.MLP(len(features), "scalar", width, depth, activation=jax.nn.gelu, key=jax.random.PRNGKey(seed))
    opt = optax.adam(optax.cosine_decay_schedule(learning_rate, epochs * max(len(tr) // batch, 1)))
    state = opt.init(eqx.filter(net, eqx.is_array))

    def loss_fn(net, xb, yb):
        return jnp.mean((jax.vmap(net)(xb) - yb) ** 2)

    @eqx.filter_jit
    def step(net, state, xb, yb):
        loss, g = eqx.filter_value_and_grad(loss_fn)(net, xb, yb)
        updates, state = opt.update(g, state, eqx.filter(net, eqx.is_array))
        return eqx.apply_updates(net, updates), state, loss

    val_loss = eqx.filter_jit(loss_fn)
    best, best_loss, history = net, np.inf, []
    for _ in range(epochs):
        rng.shuffle(tr)
        for s in range(0, max(len(tr) - batch + 1, 1), batch):
            b = tr[s : s + batch]
            net, state, _ = step(net, state, jnp.asarray(xs[b]), jnp.asarray(y[b]))
        vl = float(val_loss(net, jnp.asarray(xs[val]), jnp.asarray(y[val])))
        history.append(vl)
        if vl < best_loss:
            best, best_loss = net, vl
    return PSFEstimator(instrument, features, best, mean, std,
                        meta={"epochs": epochs, "seed": seed, "n_train": int(len(tr)), "validation_mse": history,
                              "target_variance": float(np.var(y[val]))})  # fmt: skip
