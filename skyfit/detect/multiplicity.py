"""The network as a model-selection test (issue #30): of how many sources is a fitted component's excess made?

A fitted component can hide a blend: two or three sources closer than a PSF are fitted as one (a point
between them, or a Gaussian over them), and the TS map of the residuals shows nothing once it is there.
For each component, the *patch* (the prior network's input channels, :func:`skyfit.detect._skies.
residual_image`, on a 2.4 x 2.4 deg grid centred on it, over the fitted model without it, its detector
only) goes into a small convolutional network that gives the probability of 1, 2 or 3 sources and, for
2 and 3, where they are. Where it says >= 2 with probability above its threshold (chosen on validation
blends), the component is tried as that many in a local joint fit; the likelihood decides (the fit must
improve by more than ``ts_add``), then the usual TS and extension tests (:func:`multiplicity_stage`).

Training: :func:`train_multiplicity` on blends of :mod:`skyfit.detect.blends` (stream 3; the benchmark's
stream 1 is never seen), singles among them; validation on stream 2 sets the threshold.
"""

from __future__ import annotations

import functools
import itertools
import time
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np

from .._netfile import read_net, restore_net, save_net
from ._skies import CHANNEL_GROUPS, GRID_DEG, N_CHANNELS, Grid, _galactic, _icrs, residual_image

__all__ = ["MultiplicityModel", "MultiplicityError", "load_multiplicity", "multiplicity_patch", "multiplicity_stage",
           "train_multiplicity", "multiplicity_examples", "SHIPPED_MULTIPLICITY", "PATCH_CELLS", "THRESHOLDS",
           "FLAG_RATE_GOAL"]  # fmt: skip

MODEL_FORMAT = "skyfit-multiplicity"
MODEL_VERSION = 1
SHIPPED_MULTIPLICITY = Path(__file__).with_name("multiplicity_weights.npz")
PATCH_CELLS = 24  # 2.4 deg: a pair 1 PSF68 apart (0.3-0.45 deg) with its PSF wings
MAX_SOURCES = 3
POS_SCALE_DEG = 1.2  # predicted offsets are within +-1.2 deg of the patch centre
POS_SIGMA_DEG = 0.1  # the position loss's unit
THRESHOLDS = (0.3, 0.4, 0.5, 0.6, 0.7, 0.8, 0.9)
FLAG_RATE_GOAL = 0.1  # at most this fraction of validation singles flagged (each flag costs a trial fit)
PERMS = {2: np.array(list(itertools.permutations(range(2)))), 3: np.array(list(itertools.permutations(range(3))))}


class MultiplicityError(ValueError):
    """A multiplicity network file is missing, corrupt or of another version (names the file and the fix)."""


def build_multiplicity_network(key):
    """The network (float32): five 3x3 convolutions (24 -> 12 -> 6 -> 3 cells), two dense layers, 13 outputs
    (3 logits, 2 x 2 and 3 x 2 offsets)."""
    import equinox as eqx
    import jax

    class MultiplicityNet(eqx.Module):
        convs: list
        dense: list

        def __init__(self, key):
            k = jax.random.split(key, 7)
            spec = [(N_CHANNELS, 32, 1), (32, 32, 2), (32, 48, 1), (48, 48, 2), (48, 48, 2)]
            self.convs = [eqx.nn.Conv2d(a, b, 3, stride=s, padding=1, key=k[i]) for i, (a, b, s) in enumerate(spec)]
            self.dense = [eqx.nn.Linear(48 * 9, 64, key=k[5]), eqx.nn.Linear(64, 3 + 4 + 6, key=k[6])]

        def __call__(self, x):
            h = x
            for conv in self.convs:
                h = jax.nn.gelu(conv(h))
            return self.dense[1](jax.nn.gelu(self.dense[0](h.reshape(-1))))

    net = MultiplicityNet(key)
    return jax.tree_util.tree_map(lambda a: a.astype(np.float32) if eqx.is_array(a) else a, net)


def _split_outputs(out):
    import jax.numpy as jnp

    logits = out[..., :3]
    pos2 = POS_SCALE_DEG * jnp.tanh(out[..., 3:7]).reshape(out.shape[:-1] + (2, 2))
    pos3 = POS_SCALE_DEG * jnp.tanh(out[..., 7:13]).reshape(out.shape[:-1] + (3, 2))
    return logits, pos2, pos3


@functools.lru_cache(maxsize=1)
def _forward():
    import equinox as eqx
    import jax
    import jax.numpy as jnp

    @eqx.filter_jit
    def f(net, x):
        out = jax.vmap(net)(jnp.asarray(x, jnp.float32))
        logits, pos2, pos3 = _split_outputs(out)
        return jax.nn.softmax(logits, axis=-1), pos2, pos3

    return f


@dataclass
class MultiplicityModel:
    """A trained multiplicity network, its threshold on P(>= 2 sources) and its training record."""

    net: object
    threshold: float = 0.5
    meta: dict = field(default_factory=dict)

    def save(self, path) -> Path:
        header = {"format": MODEL_FORMAT, "version": MODEL_VERSION, "patch_cells": PATCH_CELLS, "grid_deg": GRID_DEG,
                  "channel_groups": {d: [list(g) for g in gs] for d, gs in CHANNEL_GROUPS.items()},
                  "threshold": self.threshold, "meta": self.meta}  # fmt: skip
        return save_net(path, header, self.net)

    def predict(self, patches: np.ndarray) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
        """For patches (n, N_CHANNELS, 24, 24): P(1, 2, 3 sources) (n, 3) and the offsets (dl, db) in deg of
        the sources from the patch centre for 2 (n, 2, 2) and 3 (n, 3, 2)."""
        p, pos2, pos3 = _forward()(self.net, np.asarray(patches, np.float32))
        return np.asarray(p, float), np.asarray(pos2, float), np.asarray(pos3, float)


def load_multiplicity(path=None) -> MultiplicityModel:
    """Read a multiplicity network (default: the one shipped with skyfit); a missing or corrupt file, or one
    of another version or input, raises :class:`MultiplicityError` naming the file."""
    import jax

    path = Path(path) if path is not None else SHIPPED_MULTIPLICITY
    fix = "train one with skyfit.detect.multiplicity.train_multiplicity (`skyfit prior train-multiplicity`)"
    header, leaves = read_net(path, "multiplicity network", fix, MultiplicityError)
    if header.get("format") != MODEL_FORMAT or header.get("version") != MODEL_VERSION:
        raise MultiplicityError(f"{path}: format {header.get('format')!r} version {header.get('version')!r}, this "
                                f"skyfit reads {MODEL_FORMAT!r} version {MODEL_VERSION}; {fix}")  # fmt: skip
    groups = {d: [list(g) for g in gs] for d, gs in CHANNEL_GROUPS.items()}
    if (header.get("channel_groups") != groups or header.get("grid_deg") != GRID_DEG
            or header.get("patch_cells") != PATCH_CELLS):  # fmt: skip
        raise MultiplicityError(f"{path}: trained on other input channels or patches than this skyfit makes; {fix}")
    net = restore_net(build_multiplicity_network(jax.random.PRNGKey(0)), leaves, path, MultiplicityError)
    return MultiplicityModel(net=net, threshold=float(header["threshold"]), meta=header.get("meta", {}))


def multiplicity_patch(ds, mu, ra: float, dec: float) -> np.ndarray:
    """The network's input around (ra, dec): ``ds``'s residuals over ``mu`` (n_bins, n_pix) on a 24 x 24 grid
    of 0.1 deg cells centred there (other detectors' channels zero), (N_CHANNELS, 24, 24) float32."""
    lon, lat = (float(v) for v in _galactic(ra, dec))
    half = (PATCH_CELLS - 1) / 2 * GRID_DEG
    grid = Grid(lon - half, lat - half, PATCH_CELLS, PATCH_CELLS, GRID_DEG)
    return residual_image([ds], [mu], grid)


def _offsets_to_radec(ra: float, dec: float, offsets: np.ndarray) -> list[tuple[float, float]]:
    lon, lat = (float(v) for v in _galactic(ra, dec))
    out = []
    for dl, db in offsets:
        r, d = _icrs(lon + dl / max(np.cos(np.radians(lat)), 0.05), lat + db)
        out.append((float(r), float(d)))
    return out


# ---- the catalogue's step ------------------------------------------------------------------------------


def multiplicity_stage(result, fitter, datasets, cfg, log, model: MultiplicityModel | None = None):
    """Each component of ``result``'s model (a :class:`skyfit.fit.FitResult` of ``fitter``) whose patch the
    network calls a blend (P(>= 2) >= its threshold, or ``cfg.multiplicity_threshold``) is tried as the 2 or
    3 sources it sees (Gaussians of r39 0.1 deg where it puts them, the component's amplitude shared, its
    index), fitted with its neighbours within ``cfg.local_radius_deg``; the trial replaces it when it
    improves the likelihood by more than ``cfg.ts_add``. Returns (result, fitter, fits run, trials)."""
    from .components import ReplacementTrial, components, instrument_of, seed_component

    model = model or load_multiplicity(cfg.multiplicity_weights)
    thr = model.threshold if cfg.multiplicity_threshold is None else cfg.multiplicity_threshold
    fits, trials = 0, []
    for s in components(result.model):
        if s.name not in {c.name for c in components(result.model)}:
            continue
        i_ds = next(i for i, d in enumerate(datasets) if s.applies_to(d.name))
        ds = datasets[i_ds]
        without = result.model.with_values({f"{s.name}.amplitude": 0.0})
        mu = np.asarray(fitter.lk.npred(fitter.lk.vector(without.values()))[i_ds], float)
        ra, dec = s.spatial.position()
        p, pos2, pos3 = model.predict(multiplicity_patch(ds, mu, ra, dec)[None])
        if p[0, 1:].sum() < thr:
            continue
        n = 2 if p[0, 1] >= p[0, 2] else 3
        spec = {q.name: q.value for q in s.spectral.parameters}
        inst = instrument_of(ds)
        parts = [seed_component(f"{s.name}{'abc'[k]}", r, d, s.datasets[0], inst, spec["amplitude"] / n, cfg, 0.1)
                 for k, (r, d) in enumerate(_offsets_to_radec(ra, dec, (pos2 if n == 2 else pos3)[0]))]  # fmt: skip
        trial = ReplacementTrial(result, fitter, s, parts, datasets, cfg)
        fits += 1
        trials.append({"component": s.name, "p_blend": float(p[0, 1:].sum()), "n": n, "gain": float(trial.gain)})
        log(f"  multiplicity test {s.name}: P(>=2) {p[0, 1:].sum():.2f}, as {n}: delta TS {trial.gain:.1f}")
        if trial.gain > cfg.ts_add:
            result, fitter, m = trial.accept()
            fits += m
    return result, fitter, fits, trials


# ---- training ------------------------------------------------------------------------------------------


def _symmetries(x: np.ndarray, t: np.ndarray, which: int):
    """One of the 8 symmetries of the square applied to patches x (..., C, nb, nl) and offsets t (..., 2)."""
    if which & 4:  # swap l and b
        x, t = np.swapaxes(x, -1, -2), t[..., ::-1]
    if which & 1:  # mirror l
        x, t = x[..., ::-1], t * np.array([-1.0, 1.0])
    if which & 2:  # mirror b
        x, t = x[..., ::-1, :], t * np.array([1.0, -1.0])
    return np.ascontiguousarray(x), t


def multiplicity_examples(stream: int, ks, log=None) -> dict:
    """Patches of blends ``ks`` of ``stream`` (:func:`skyfit.detect.blends.draw_blend` with its training
    kinds), centred on the amplitude-weighted centroid of the members moved by N(0, 0.05 deg) in l and b,
    over background and diffuse emission: images (n, C, 24, 24), number of sources, offsets (n, 3, 2) of
    the members (dl cos b, db; padded with 0), kind and smallest separation (PSF68)."""
    from .blends import TRAINING_KINDS, draw_blend, realise

    images, n_src, offsets, kinds, seps = [], [], [], [], []
    t0 = time.perf_counter()
    for j, k in enumerate(ks):
        blend = draw_blend(int(k), stream, TRAINING_KINDS)
        real = realise(blend)
        mem = real["members"]
        w = np.array(blend["amps"])
        lon = np.array([m["l"] for m in mem])
        lon = lon[0] + (lon - lon[0] + 180.0) % 360.0 - 180.0
        lat = np.array([m["b"] for m in mem])
        jit = np.random.default_rng([30, stream, int(k), 1]).normal(0.0, 0.05, 2)
        lc, bc = float(np.average(lon, weights=w) + jit[0]), float(np.average(lat, weights=w) + jit[1])
        ra, dec = (float(v) for v in _icrs(lc, bc))
        images.append(multiplicity_patch(real["dataset"], real["mu"], ra, dec))
        off = np.zeros((MAX_SOURCES, 2))
        off[: len(mem)] = np.stack([(lon - lc) * np.cos(np.radians(bc)), lat - bc], axis=1)
        n_src.append(len(mem))
        offsets.append(off)
        kinds.append(blend["kind"])
        seps.append(min(blend["seps_psf"]) if blend["seps_psf"] else np.inf)
        if log and (j + 1) % 200 == 0:
            log(f"  {j + 1}/{len(ks)} patches, {time.perf_counter() - t0:.0f} s")
    return {"images": np.stack(images), "n": np.array(n_src), "offsets": np.stack(offsets), "kind": np.array(kinds),
            "sep_psf": np.array(seps)}  # fmt: skip


def _loss_fn():
    import jax
    import jax.numpy as jnp

    perms2, perms3 = jnp.asarray(PERMS[2]), jnp.asarray(PERMS[3])

    def one(net, x, n, t):
        logits, pos2, pos3 = _split_outputs(net(x))
        ce = -jax.nn.log_softmax(logits)[n - 1]
        d2 = jnp.min(jnp.sum((pos2[None] - t[:2][perms2]) ** 2, axis=(1, 2)))
        d3 = jnp.min(jnp.sum((pos3[None] - t[perms3]) ** 2, axis=(1, 2)))
        pos = jnp.where(n == 2, d2 / 2, 0.0) + jnp.where(n == 3, d3 / 3, 0.0)
        return ce + 0.5 * pos / POS_SIGMA_DEG**2

    def loss(net, xb, nb, tb):
        return jnp.mean(jax.vmap(one, in_axes=(None, 0, 0, 0))(net, xb, nb, tb))

    return loss


def choose_threshold(p_blend: np.ndarray, n_src: np.ndarray) -> tuple[float, dict]:
    """The lowest of :data:`THRESHOLDS` at which at most :data:`FLAG_RATE_GOAL` of the single sources are
    flagged (P(>= 2) >= threshold), and per threshold the flag rate of singles and of blends."""
    single = n_src == 1

    def rate(sel, t):
        return float(np.mean(p_blend[sel] >= t)) if sel.any() else float("nan")

    table = {str(t): {"singles_flagged": rate(single, t), "blends_flagged": rate(~single, t)} for t in THRESHOLDS}
    ok = [t for t in THRESHOLDS if table[str(t)]["singles_flagged"] <= FLAG_RATE_GOAL]
    return (ok[0] if ok else THRESHOLDS[-1]), table


def train_multiplicity(train: dict, val: dict, seed: int = 0, steps: int = 3000, batch: int = 64,
                       learning_rate: float = 2e-3, log=print) -> MultiplicityModel:  # fmt: skip
    """Train on the examples ``train`` (:func:`multiplicity_examples` of stream 3), each batch under one
    of the square's 8 symmetries at random; keep the network of least loss on ``val`` (stream 2; checked
    20 times) and set its threshold there (:func:`choose_threshold`). Deterministic given ``seed``."""
    import equinox as eqx
    import jax
    import optax

    net = build_multiplicity_network(jax.random.PRNGKey(seed))
    schedule = optax.warmup_cosine_decay_schedule(0.0, learning_rate, min(100, steps // 5), steps, learning_rate * 0.02)
    opt = optax.chain(optax.clip_by_global_norm(5.0), optax.adamw(schedule, weight_decay=1e-4))
    state = opt.init(eqx.filter(net, eqx.is_array))
    loss = _loss_fn()

    @eqx.filter_jit
    def step(net, state, xb, nb, tb):
        value, grads = eqx.filter_value_and_grad(loss)(net, xb, nb, tb)
        updates, state = opt.update(grads, state, eqx.filter(net, eqx.is_array))
        return eqx.apply_updates(net, updates), state, value

    val_loss = eqx.filter_jit(loss)
    rng = np.random.default_rng([seed, 30])
    t0, running, history = time.perf_counter(), [], []
    best = (np.inf, net, 0)
    n_train = len(train["n"])
    vx, vn, vt = val["images"].astype(np.float32), val["n"], val["offsets"].astype(np.float32)
    for it in range(steps):
        idx = rng.integers(0, n_train, batch)
        x, t = _symmetries(train["images"][idx], train["offsets"][idx], int(rng.integers(8)))
        net, state, value = step(net, state, x.astype(np.float32), train["n"][idx], t.astype(np.float32))
        running.append(float(value))
        if (it + 1) % max(steps // 20, 1) == 0:  # the network kept is the one of least validation loss
            v = float(val_loss(net, vx, vn, vt))
            history.append({"step": it + 1, "loss": float(np.mean(running)), "validation_loss": v})
            log(f"  step {it + 1}/{steps}: loss {np.mean(running):.3f}, validation {v:.3f} "
                f"({time.perf_counter() - t0:.0f} s)")  # fmt: skip
            running = []
            if v < best[0]:
                best = (v, net, it + 1)
    net = best[1]
    model = MultiplicityModel(net=net)
    p, _, _ = model.predict(val["images"])
    p_blend = p[:, 1:].sum(axis=1)
    model.threshold, table = choose_threshold(p_blend, val["n"])
    acc = float(np.mean(np.argmax(p, axis=1) + 1 == val["n"]))
    model.meta = {"seed": seed, "steps": steps, "kept_step": best[2], "validation_loss": best[0],
                  "batch": batch, "learning_rate": learning_rate,
                  "n_train": n_train, "n_validation": len(val["n"]), "train_stream": 3, "validation_stream": 2,
                  "validation_accuracy": acc, "validation_flag_rates": table, "loss_history": history,
                  "training_s": round(time.perf_counter() - t0, 1), "jax": jax.__version__}  # fmt: skip
    at = table[str(model.threshold)]
    log(f"  validation: accuracy {acc:.3f}; threshold {model.threshold} (singles flagged {at['singles_flagged']:.3f}, "
        f"blends {at['blends_flagged']:.3f})")  # fmt: skip
    return model
