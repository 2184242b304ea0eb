"""Gamma/hadron classifiers in JAX (equinox), trained with optax, and their model files.

Two networks:

- ``"mlp"``: a multilayer perceptron on the standardised event features;
- ``"pointcloud"``: a deep-sets network on each event's largest hits (distance to the core, signal),
  pooled (mean and max) and joined with the event features: it sees the isolated large signals of
  muons and the lumpy lateral profile of hadron sub-cascades that a few summary numbers average away.

Training minimises the weighted binary cross-entropy (gammas 1, background 0) with Adam; a random 20 %
of the training events is held out, and the network of the epoch with the lowest held-out loss is
kept. The model file is an ``.npz`` holding a JSON header (format version, instrument, feature names,
network kind and sizes, standardisation, cuts, training record) and the network's arrays.
"""

from __future__ import annotations

import functools
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np

from .._netfile import read_net, restore_net, save_net
from ._features import GHSepError, feature_matrix

__all__ = ["GHModel", "train_classifier", "load_model", "MODEL_FORMAT", "MODEL_VERSION"]

MODEL_FORMAT = "skyfit-ghsep"
MODEL_VERSION = 1


def _build(kind: str, n_features: int, hyper: dict, key):
    import equinox as eqx
    import jax

    width, depth = int(hyper.get("width", 64)), int(hyper.get("depth", 2))
    if kind == "mlp":
        return eqx.nn.MLP(n_features, "scalar", width, depth, activation=jax.nn.gelu, key=key)
    if kind == "pointcloud":
        k1, k2 = jax.random.split(key)
        hw = int(hyper.get("hit_width", 32))
        return _pc_class()(
            phi=eqx.nn.MLP(3, hw, hw, 2, activation=jax.nn.gelu, final_activation=jax.nn.gelu, key=k1),
            rho=eqx.nn.MLP(2 * hw + n_features, "scalar", width, depth, activation=jax.nn.gelu, key=k2),
        )
    raise GHSepError(f"unknown network kind {kind!r}; use 'mlp' or 'pointcloud'")


@functools.lru_cache(maxsize=1)
def _pc_class():
    """The deep-sets module, defined on first use so that importing skyfit needs no equinox."""
    import equinox as eqx
    import jax
    import jax.numpy as jnp

    class PointCloud(eqx.Module):
        phi: eqx.nn.MLP
        rho: eqx.nn.MLP

        def __call__(self, x, cloud):
            mask = cloud[:, 3:4]
            h = jax.vmap(self.phi)(cloud[:, :3]) * mask
            n = jnp.maximum(mask.sum(), 1.0)
            pooled = jnp.concatenate([h.sum(0) / n, jnp.max(jnp.where(mask > 0, h, -1e3), axis=0)])
            return self.rho(jnp.concatenate([pooled, x]))

    return PointCloud


def _logits(net, kind, x, cloud=None):
    import jax

    if kind == "mlp":
        return jax.vmap(net)(x)
    return jax.vmap(net)(x, cloud)


@dataclass
class GHModel:
    """A trained gamma/hadron classifier: ``score`` gives a gamma-ness in [0, 1] per event."""

    instrument: str
    features: tuple
    kind: str
    hyper: dict
    net: object
    mean: np.ndarray
    std: np.ndarray
    cuts: dict = field(default_factory=dict)  # analysis bin -> score threshold (events above pass)
    meta: dict = field(default_factory=dict)

    def _x(self, table, where="event table"):
        x = feature_matrix(table, self.features, where)
        return ((x - self.mean) / self.std).astype(np.float32)

    def score(self, table, cloud=None, batch: int = 65536, where: str = "event table") -> np.ndarray:
        """Gamma-ness per event (sigmoid of the network output). ``cloud``: :func:`hit_cloud` output,
        needed by the point-cloud network."""
        import jax.numpy as jnp

        x = self._x(table, where)
        if self.kind == "pointcloud" and cloud is None:
            raise GHSepError("this model reads hit patterns: pass cloud=hit_cloud(table, hits, layout)")
        f = _score_fn(self.kind)
        out = []
        for s in range(0, len(x), batch):
            c = None if cloud is None else jnp.asarray(cloud[s : s + batch])
            # the sigmoid in float64: in float32 every logit above ~17 gives exactly 1 and ties the scores
            logit = np.asarray(f(self.net, jnp.asarray(x[s : s + batch]), c), np.float64)
            out.append(1.0 / (1.0 + np.exp(-logit)))
        return np.concatenate(out) if out else np.zeros(0)

    def passes(self, table, scores=None, bins=None, **kw) -> np.ndarray:
        """Whether each event passes: the ML cut in the bins that have one, the traditional cut in the
        bins where it was kept (``meta["traditional_cut"]``), fail elsewhere. ``bins``: the analysis bin of
        each event (default :func:`analysis_bin` with the model's energy calibration)."""
        from ._samples import analysis_bin, traditional_score

        if not self.cuts and not self.meta.get("traditional_cut"):
            raise GHSepError("this model has no cuts yet; choose them with skyfit.ghsep.optimise_cuts")
        s = self.score(table, **kw) if scores is None else scores
        b = analysis_bin(table, self.instrument, self.meta.get("energy_calibration")) if bins is None else bins
        out = np.zeros(len(s), bool)
        for k, v in self.cuts.items():
            sel = b == k
            out[sel] = s[sel] >= v
        trad = self.meta.get("traditional_cut", {}).get("thresholds", {})
        rest = [k for k in trad if k not in self.cuts]
        if rest:
            ts = traditional_score(table, self.instrument)
            for k in rest:
                sel = b == k
                out[sel] = ts[sel] >= trad[k]
        return out

    # ---- model files -------------------------------------------------------------------------------
    def save(self, path) -> Path:
        header = {
            "format": MODEL_FORMAT,
            "version": MODEL_VERSION,
            "instrument": self.instrument,
            "features": list(self.features),
            "kind": self.kind,
            "hyper": self.hyper,
            "mean": [float(v) for v in self.mean],
            "std": [float(v) for v in self.std],
            "cuts": {str(k): float(v) for k, v in self.cuts.items()},
            "meta": self.meta,
        }
        return save_net(path, header, self.net)


@functools.lru_cache(maxsize=4)
def _score_fn(kind):
    import equinox as eqx

    @eqx.filter_jit
    def f(net, x, cloud):
        return _logits(net, kind, x, cloud)

    return f


def load_model(path, features=None, instrument: str | None = None) -> GHModel:
    """Read a model file. A missing or corrupt file, another format version, or (when given) other
    ``features``/``instrument`` than the model's raise :class:`GHSepError` naming the file."""
    import jax

    path = Path(path)
    header, leaves = read_net(path, "model", f"train one with `skyfit ghsep train --outdir {path.parent}`",
                              GHSepError)  # fmt: skip
    if header.get("format") != MODEL_FORMAT or header.get("version") != MODEL_VERSION:
        raise GHSepError(
            f"{path}: model format {header.get('format')!r} version {header.get('version')!r}, this skyfit reads "
            f"{MODEL_FORMAT!r} version {MODEL_VERSION}; retrain it with `skyfit ghsep train`"
        )
    if features is not None and tuple(features) != tuple(header["features"]):
        raise GHSepError(
            f"{path}: trained on features {header['features']}, asked for {list(features)}; retrain on these features"
        )
    if instrument is not None and instrument.upper() != header["instrument"]:
        raise GHSepError(f"{path}: a {header['instrument']} model, asked for {instrument.upper()}")
    _check_revision(path, header)
    skeleton = _build(header["kind"], len(header["features"]), header["hyper"], jax.random.PRNGKey(0))
    net = restore_net(skeleton, leaves, path, GHSepError)
    return GHModel(
        instrument=header["instrument"],
        features=tuple(header["features"]),
        kind=header["kind"],
        hyper=header["hyper"],
        net=net,
        mean=np.asarray(header["mean"]),
        std=np.asarray(header["std"]),
        cuts={int(k): float(v) for k, v in header["cuts"].items()},
        meta=_int_keyed(header.get("meta", {})),
    )


def _check_revision(path, header: dict) -> None:
    """A model trained on samples of another revision of the shower simulation is refused: its cuts and
    efficiencies describe other events. Models of real data (no simulated samples) pass."""
    from ._samples import simulation_revision

    samples = header.get("meta", {}).get("samples")
    if not samples:
        return
    have, now = samples.get("simulation_revision"), simulation_revision(header["instrument"])
    if have != now:
        raise GHSepError(f"{path}: trained on samples of shower-simulation revision {have!r}, this skyfit simulates "
                         f"revision {now!r}; retrain it with `skyfit ghsep train` (its cuts and efficiencies "
                         "describe the other simulation's events)")  # fmt: skip


def _int_keyed(meta: dict) -> dict:
    """JSON turns the traditional cut's bin keys into strings: back to ints, as in a fresh model."""
    trad = meta.get("traditional_cut")
    if trad and "thresholds" in trad:
        trad["thresholds"] = {int(k): float(v) for k, v in trad["thresholds"].items()}
    return meta


def _training_arrays(x, y, w):
    """The training features, labels and weights as arrays, checked."""
    x = np.asarray(x, float)
    y = np.asarray(y, np.float32)
    w = np.asarray(w, np.float32)
    if not (len(x) == len(y) == len(w)) or len(x) < 10:
        raise GHSepError(f"training needs at least 10 events and matching x, y, w (got {len(x)}, {len(y)}, {len(w)})")
    if not (np.all(np.isfinite(w)) and np.all(w >= 0)):
        raise GHSepError("training weights must be finite and non-negative")
    if y.min() == y.max():
        raise GHSepError("training needs both gammas (y = 1) and background (y = 0)")
    return x, y, w


def _validation_loss(eval_loss, net, val, xs, y, w, cl) -> float:
    """The weighted mean loss of ``net`` on the validation events ``val``, in slices of 8192."""
    import jax.numpy as jnp

    vl = 0.0
    for s in range(0, len(val), 8192):
        b = val[s : s + 8192]
        vl += float(eval_loss(net, jnp.asarray(xs[b]), jnp.asarray(y[b]), jnp.asarray(w[b]),
                              None if cl is None else jnp.asarray(cl[b]))) * float(w[b].sum())  # fmt: skip
    return vl / float(w[val].sum())


def train_classifier(
    x: np.ndarray,
    y: np.ndarray,
    w: np.ndarray,
    features,
    instrument: str,
    kind: str = "mlp",
    cloud: np.ndarray | None = None,
    epochs: int = 40,
    batch: int = 1024,
    learning_rate: float = 2e-3,
    hyper: dict | None = None,
    seed: int = 0,
    progress: bool = False,
) -> GHModel:
    """Train a classifier on feature matrix ``x`` (raw features, standardised here), labels ``y`` (1
    gamma, 0 background) and weights ``w``. Returns a :class:`GHModel` (no cuts yet)."""
    import equinox as eqx
    import jax
    import jax.numpy as jnp
    import optax

    x, y, w = _training_arrays(x, y, w)
    hyper = {"width": 64, "depth": 2, **(hyper or {})}
    mean = x.mean(axis=0)
    std = np.where(x.std(axis=0) > 0, x.std(axis=0), 1.0)
    xs = ((x - mean) / std).astype(np.float32)
    w = w / w.mean()
    rng = np.random.default_rng(seed)
    idx = rng.permutation(len(x))
    n_val = max(len(x) // 5, 1)
    val, tr = idx[:n_val], idx[n_val:]
    net = _build(kind, x.shape[1], hyper, jax.random.PRNGKey(seed))
    opt = optax.adamw(optax.cosine_decay_schedule(learning_rate, epochs * max(len(tr) // batch, 1)), weight_decay=1e-4)
    state = opt.init(eqx.filter(net, eqx.is_array))
    cl = None if cloud is None else np.asarray(cloud, np.float32)
    if kind == "pointcloud" and cl is None:
        raise GHSepError("the point-cloud network needs cloud=hit_cloud(...) for the training events")

    def loss_fn(net, xb, yb, wb, cb):
        logit = _logits(net, kind, xb, cb)
        return jnp.sum(wb * optax.sigmoid_binary_cross_entropy(logit, yb)) / jnp.sum(wb)

    @eqx.filter_jit
    def step(net, state, xb, yb, wb, cb):
        loss, g = eqx.filter_value_and_grad(loss_fn)(net, xb, yb, wb, cb)
        updates, state = opt.update(g, state, eqx.filter(net, eqx.is_array))
        return eqx.apply_updates(net, updates), state, loss

    eval_loss = eqx.filter_jit(loss_fn)

    def batches(ids):
        for s in range(0, len(ids) - batch + 1 if len(ids) >= batch else 1, batch):
            b = ids[s : s + batch]
            yield xs[b], y[b], w[b], (None if cl is None else cl[b])

    best, best_loss, history = net, np.inf, []
    it = range(epochs)
    if progress:
        from tqdm.auto import tqdm

        it = tqdm(it, desc=f"training {kind} ({instrument})", unit="epoch")
    for _ in it:
        rng.shuffle(tr)
        for xb, yb, wb, cb in batches(tr):
            net, state, _ = step(net, state, jnp.asarray(xb), jnp.asarray(yb), jnp.asarray(wb),
                                 None if cb is None else jnp.asarray(cb))  # fmt: skip
        vl = _validation_loss(eval_loss, net, val, xs, y, w, cl)
        history.append(vl)
        if vl < best_loss:
            best, best_loss = net, vl
    return GHModel(
        instrument=instrument.upper(),
        features=tuple(features),
        kind=kind,
        hyper=hyper,
        net=best,
        mean=mean,
        std=std,
        meta={
            "epochs": epochs,
            "batch": batch,
            "learning_rate": learning_rate,
            "seed": seed,
            "n_train": int(len(tr)),
            "n_validation": int(n_val),
            "validation_loss": [round(v, 5) for v in history],
            "best_epoch": int(np.argmin(history)),
        },  # fmt: skip
    )
