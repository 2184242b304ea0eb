"""Training of the prior network (:mod:`skyfit.detect.prior`): simulated fields, loss, optimisation, and the
validation steps after it (heat-map threshold, calibration of the widths). ``skyfit prior train`` runs
:func:`train_prior`; the network reproduces from its seed."""

from __future__ import annotations

import time

import numpy as np

from ._skies import DETECTORS, Grid, residual_image
from .network import DEFAULT_HYPER, N_OUT, PriorModel, build_network

__all__ = ["train_prior", "simulate_field", "make_fields", "match_proposals", "interval_z", "coverage", "calibrate",
           "finish_prior", "CHI2_2D_68", "THRESHOLDS", "RECALL_GOAL", "R39_FLOOR_DEG"]  # fmt: skip

CHI2_2D_68 = 2.2788  # 68 % quantile of chi^2 with 2 degrees of freedom
THRESHOLDS = (0.1, 0.15, 0.2, 0.25, 0.3, 0.4, 0.5)  # heat-map thresholds tried on the validation fields
RECALL_GOAL = 0.85  # a missed component is lost for good; each false one costs fits (it is dropped by TS)
# r39 below this is a point source for both detectors (PSF68 0.3-0.45 deg; the catalogue's min_r39): the
# network cannot know r39 better, and without a floor a point source predicted 0.001 +- 0.001 deg
# misses the truth (0) by a hair
R39_FLOOR_DEG = 0.02


def simulate_field(seed: int, population: str = "1lhaaso", width_deg: float = 8.0, height_deg: float = 6.0,
                   l_range=(15.0, 75.0), nside: int = 512, livetime_days: float = 365.0, margin_deg: float = 1.0,
                   density_per_deg2: float = 0.25) -> dict:  # fmt: skip
    """One simulated field: its datasets, true sources, the network's input image and its targets."""
    from ..likelihood import npred
    from ..models import Models
    from ..simulate import lhaaso_dataset, simulate_dataset
    from ..skies import Region, galactic_diffuse
    from ._skies import draw_sky, psf68, sky_model, targets

    rng = np.random.default_rng([seed, 7])
    l0 = float(rng.uniform(*l_range))
    region = Region(l0, l0 + width_deg, -height_deg / 2, height_deg / 2)
    roi = region.roi(nside, margin_deg)
    empty = [lhaaso_dataset(det, roi=roi, livetime_days=livetime_days, name=det) for det in DETECTORS]
    sources = draw_sky(region, seed, population, density_per_deg2, margin_deg,
                       psf68_deg={d.name: psf68(d.response) for d in empty})  # fmt: skip
    diffuse = galactic_diffuse()
    truth = Models(list(sky_model(sources).sources) + [diffuse])
    datasets, mus = [], []
    for ds in empty:
        sim = simulate_dataset(truth.for_datasets([ds.name]), ds, rng.integers(2**63))
        datasets.append(sim)
        mus.append(npred(Models([diffuse]), sim))
    grid = Grid.covering(roi)
    image = residual_image(datasets, mus, grid)
    return {"seed": seed, "region": region, "datasets": datasets, "mus": mus, "truth": truth, "sources": sources,
            "grid": grid, "image": image, "targets": targets(sources, datasets, mus, grid)}  # fmt: skip


def _target_maps(tg: dict, shape) -> tuple[np.ndarray, np.ndarray, np.ndarray, np.ndarray]:
    """heat (2, nb, nl), centre mask (2, nb, nl), regression weight (2, nb, nl) and targets (2, 4, nb, nl):
    dl, db (cells, from each cell's centre), r39, log10 counts. The regressions are learnt on the 3x3
    cells around each component (the nearest component where two reach), so a heat-map peak one
    cell off still reads a right offset."""
    nb, nl = shape
    heat = np.zeros((2, nb, nl), np.float32)
    center = np.zeros((2, nb, nl), np.float32)
    weight = np.zeros((2, nb, nl), np.float32)
    reg = np.zeros((2, 4, nb, nl), np.float32)
    dist = np.full((2, nb, nl), np.inf)
    jj, ii = np.mgrid[0:nb, 0:nl]
    for k, det in enumerate(DETECTORS):
        for t in tg.get(det, []):
            i, j = t["i"], t["j"]
            if not (0 <= i < nl and 0 <= j < nb):
                continue
            heat[k] = np.maximum(heat[k], np.exp(-((ii - i) ** 2 + (jj - j) ** 2) / 2.0))
            center[k, j, i] = 1.0
            for a in (-1, 0, 1):
                for b in (-1, 0, 1):
                    ci, cj = i + a, j + b
                    if not (0 <= ci < nl and 0 <= cj < nb):
                        continue
                    d = (t["di"] - a) ** 2 + (t["dj"] - b) ** 2
                    if d < dist[k, cj, ci]:
                        dist[k, cj, ci] = d
                        weight[k, cj, ci] = 1.0
                        reg[k, :, cj, ci] = (t["di"] - a, t["dj"] - b, t["r39"], t["log10_counts"])
    return heat, center, weight, reg


def _loss_fn():
    import jax
    import jax.numpy as jnp

    def one(net, x, heat, center, weight, reg):
        out = net(x)
        total = 0.0
        for k in range(2):
            o = out[k * N_OUT : (k + 1) * N_OUT]
            logit = o[0]
            p = jax.nn.sigmoid(logit)
            logp, log1mp = jax.nn.log_sigmoid(logit), jax.nn.log_sigmoid(-logit)
            y = heat[k]
            c = center[k]
            focal = -c * (1 - p) ** 2 * logp - (1 - c) * (1 - y) ** 4 * p**2 * log1mp
            n = jnp.maximum(jnp.sum(c), 1.0)
            ls_pos, ls_r, ls_c = o[3], o[5], o[7]
            nll = (0.5 * ((o[1] - reg[k, 0]) ** 2 + (o[2] - reg[k, 1]) ** 2) * jnp.exp(-2 * ls_pos) + 2 * ls_pos
                   + 0.5 * ((o[4] - reg[k, 2]) * jnp.exp(-ls_r)) ** 2 + ls_r
                   + 0.5 * ((o[6] - reg[k, 3]) * jnp.exp(-ls_c)) ** 2 + ls_c)  # fmt: skip
            total = total + (jnp.sum(focal) + jnp.sum(weight[k] * nll) / 9.0) / n
        return total

    def loss(net, xb, hb, cb, wb, rb):
        return jnp.mean(jax.vmap(one, in_axes=(None, 0, 0, 0, 0, 0))(net, xb, hb, cb, wb, rb))

    return loss


def _crops(fields, rng, batch: int, size: int):
    out = [[] for _ in range(5)]
    for _ in range(batch):
        f = fields[rng.integers(len(fields))]
        x, (heat, center, weight, reg) = f["image"], f["maps"]
        nb, nl = x.shape[1:]
        j0 = rng.integers(0, max(nb - size, 0) + 1)
        i0 = rng.integers(0, max(nl - size, 0) + 1)
        sj, si = slice(j0, j0 + size), slice(i0, i0 + size)
        arrays = [x[:, sj, si], heat[:, sj, si], center[:, sj, si], weight[:, sj, si], reg[:, :, sj, si]]
        if rng.random() < 0.5:  # mirror in longitude: the offsets in l change sign
            arrays = [a[..., ::-1].copy() for a in arrays]
            arrays[4][:, 0] *= -1
        for lst, a in zip(out, arrays, strict=True):
            lst.append(a)
    return tuple(np.stack(lst) for lst in out)


def make_fields(seeds, population="1lhaaso", progress=None, **kw) -> list[dict]:
    fields = []
    for s in seeds:
        f = simulate_field(int(s), population, **kw)
        f["maps"] = _target_maps(f["targets"], f["image"].shape[1:])
        fields.append(f)
        if progress is not None:
            progress(len(fields))
    return fields


def match_proposals(proposals: list[dict], fields_targets: dict, radius_deg: float = 0.3) -> list[tuple]:
    """(proposal, target) pairs: each target with the nearest unused proposal of its detector within
    ``radius_deg`` + its r39."""
    pairs = []
    for det in DETECTORS:
        props = [p for p in proposals if p["detector"] == det]
        used = set()
        for t in sorted(fields_targets.get(det, []), key=lambda t: -t["ts"]):
            best, best_d = None, radius_deg + t["r39"]
            for k, p in enumerate(props):
                if k in used:
                    continue
                d = np.hypot((p["l"] - t["l"] + 180) % 360 - 180, p["b"] - t["b"])
                if d <= best_d:
                    best, best_d = k, d
            if best is not None:
                used.add(best)
                pairs.append((props[best], t))
    return pairs


def interval_z(p: dict, t: dict) -> dict:
    """Standardised errors of one proposal against its truth (uncalibrated widths given in ``p``)."""
    dl = ((p["l"] - t["l"] + 180) % 360 - 180) * np.cos(np.radians(t["b"]))
    return {"pos2": (dl**2 + (p["b"] - t["b"]) ** 2) / p["sigma_pos"] ** 2,
            "r39": abs(p["r39"] - t["r39"]) / p["sigma_r39"],
            "counts": abs(p["log10_counts"] - t["log10_counts"]) / p["sigma_log10_counts"]}  # fmt: skip


def coverage(pairs) -> dict:
    """Fraction of truths inside the proposals' 68 % intervals: position (2D), r39, log10 counts."""
    if not pairs:
        return {"pos": float("nan"), "r39": float("nan"), "counts": float("nan"), "n": 0}
    z = [interval_z(p, t) for p, t in pairs]
    return {"pos": float(np.mean([v["pos2"] <= CHI2_2D_68 for v in z])),
            "r39": float(np.mean([v["r39"] <= 1.0 for v in z])),
            "counts": float(np.mean([v["counts"] <= 1.0 for v in z])), "n": len(z)}  # fmt: skip


def calibrate(pairs) -> dict:
    """Per detector, the scales of the network's widths that make 68 % of the validation truths fall
    inside the intervals, from (proposal, target) ``pairs`` proposed with unit scales. The r39 width is
    sqrt((scale sigma)^2 + R39_FLOOR_DEG^2): the scale is the 68 % quantile of what each truth needs."""
    cal = {}
    for det in DETECTORS:
        mine = [(p, t) for p, t in pairs if p["detector"] == det]
        if len(mine) < 10:
            cal[det] = {"pos": 1.0, "r39": 1.0, "counts": 1.0, "r39_floor": R39_FLOOR_DEG}
            continue
        z = [interval_z(p, t) for p, t in mine]
        need_r39 = [np.sqrt(max((p["r39"] - t["r39"]) ** 2 - R39_FLOOR_DEG**2, 0.0)) / p["sigma_r39"] for p, t in mine]
        cal[det] = {"pos": float(np.sqrt(np.quantile([v["pos2"] for v in z], 0.68) / CHI2_2D_68)),
                    "r39": float(np.quantile(need_r39, 0.68)),
                    "counts": float(np.quantile([v["counts"] for v in z], 0.68)),
                    "r39_floor": R39_FLOOR_DEG}  # fmt: skip
    return cal


def finish_prior(model: PriorModel, val: list[dict], log=print) -> tuple[dict, dict]:
    """The steps after training, on the validation fields ``val``: the heat-map threshold (the highest
    whose proposals recover RECALL_GOAL of the components with expected TS >= 37: a missed component is
    lost, a false one costs fits before the TS test drops it) and the widths' calibration. Sets
    ``model.threshold`` and ``model.calibration``; returns (recall per threshold, raw coverage)."""
    model.calibration = {d: {"pos": 1.0, "r39": 1.0, "counts": 1.0} for d in DETECTORS}
    n_bright = sum(t["ts"] >= 37 for f in val for d in DETECTORS for t in f["targets"][d])
    recall = {}
    for thr in THRESHOLDS:
        found = 0
        for f in val:
            found += sum(t["ts"] >= 37 for _, t in match_proposals(model.propose(f["image"], f["grid"], thr),
                                                                    f["targets"]))  # fmt: skip
        recall[thr] = found / max(n_bright, 1)
    model.threshold = max([t for t in THRESHOLDS if recall[t] >= RECALL_GOAL] or [min(THRESHOLDS)])
    log(f"  validation recall of TS >= 37 components per threshold: {recall}; threshold {model.threshold}")
    pairs = []
    for f in val:
        pairs += match_proposals(model.propose(f["image"], f["grid"]), f["targets"])
    raw = coverage(pairs)
    model.calibration = calibrate(pairs)
    log(f"  validation coverage before calibration {raw}; scales {model.calibration}")
    return recall, raw


def train_prior(
    seed: int = 0,
    n_fields: int = 200,
    n_validation: int = 30,
    steps: int = 6000,
    batch: int = 12,
    crop: int = 48,
    learning_rate: float = 2e-3,
    hyper: dict | None = None,
    log=print,
) -> PriorModel:
    """Simulate ``n_fields`` training and ``n_validation`` validation fields (seeds derived from ``seed``),
    train the network, calibrate its widths on the validation fields. Deterministic given ``seed``."""
    import equinox as eqx
    import jax
    import optax

    t0 = time.perf_counter()
    hyper = dict(hyper or DEFAULT_HYPER)
    train_seeds = [int(v) for v in np.random.default_rng([seed, 1]).integers(0, 2**31, n_fields)]
    val_seeds = [int(v) for v in np.random.default_rng([seed, 2]).integers(0, 2**31, n_validation)]
    log(f"simulating {n_fields} training and {n_validation} validation fields ...")
    step_every = max(n_fields // 8, 1)

    def progress(n):
        if n % step_every == 0:
            log(f"  {n}/{n_fields} fields, {time.perf_counter() - t0:.0f} s")

    fields = make_fields(train_seeds, progress=progress)
    val = make_fields(val_seeds)
    t_sim = time.perf_counter() - t0
    n_targets = {d: sum(len(f["targets"][d]) for f in fields) for d in DETECTORS}
    log(f"  done in {t_sim:.0f} s; training components {n_targets}")

    net = build_network(hyper, jax.random.PRNGKey(seed))
    schedule = optax.warmup_cosine_decay_schedule(0.0, learning_rate, min(100, steps // 5), steps, learning_rate * 0.02)
    opt = optax.chain(optax.clip_by_global_norm(5.0), optax.adamw(schedule, weight_decay=1e-4))
    state = opt.init(eqx.filter(net, eqx.is_array))
    loss = _loss_fn()

    @eqx.filter_jit
    def step(net, state, xb, hb, cb, wb, rb):
        value, grads = eqx.filter_value_and_grad(loss)(net, xb, hb, cb, wb, rb)
        updates, state = opt.update(grads, state, eqx.filter(net, eqx.is_array))
        return eqx.apply_updates(net, updates), state, value

    rng = np.random.default_rng([seed, 3])
    history = []
    t1 = time.perf_counter()
    running = []
    for it in range(steps):
        net, state, value = step(net, state, *_crops(fields, rng, batch, crop))
        running.append(float(value))
        if (it + 1) % max(steps // 10, 1) == 0:
            history.append({"step": it + 1, "loss": float(np.mean(running))})
            log(f"  step {it + 1}/{steps}: loss {np.mean(running):.3f} ({time.perf_counter() - t1:.0f} s)")
            running = []
    t_train = time.perf_counter() - t1

    model = PriorModel(net=net, hyper=hyper)
    recall, raw = finish_prior(model, val, log)
    model.meta = {
        "seed": seed, "n_fields": n_fields, "n_validation": n_validation, "steps": steps, "batch": batch,
        "crop": crop, "learning_rate": learning_rate, "population": "1lhaaso",
        "training_components": n_targets, "validation_matched": raw["n"],
        "validation_recall_ts37": {str(k): round(v, 4) for k, v in recall.items()},
        "validation_coverage_before_calibration": raw, "loss_history": history,
        "simulation_s": round(t_sim, 1), "training_s": round(t_train, 1),
        "jax": jax.__version__, "equinox": eqx.__version__, "optax": optax.__version__,
    }  # fmt: skip
    log(f"  trained in {t_train:.0f} s")
    return model
