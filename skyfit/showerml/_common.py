"""What the shower tasks share: the error type, events joined to their hits, a small trainer for
equinox MLPs (classification or a Gaussian likelihood), and intervals over the test sample."""

from __future__ import annotations

import numpy as np

from ..showers import Hits, km2a_layouts, wcda_layout

__all__ = ["ShowerMLError", "EventHits", "event_hits", "layout_for", "train_mlp", "mlp_apply", "bootstrap_interval"]

HIT_COLUMNS = ("EVENT_ID", "DETECTOR", "SIGNAL", "TIME_NS", "MUON_LAYOUT")


class ShowerMLError(ValueError):
    """Bad input to a shower network: a model for another array, hits without times, events without hits."""


def layout_for(instrument: str):
    """(layout, muon layout or None) of ``instrument`` ('WCDA' or 'KM2A')."""
    instrument = str(instrument).upper()
    if instrument == "WCDA":
        return wcda_layout(), None
    if instrument == "KM2A":
        return km2a_layouts()
    raise ShowerMLError(f"instrument must be 'WCDA' or 'KM2A', got {instrument!r}")


class EventHits:
    """An event table and its hits as :class:`skyfit.showers.Hits` indexed by table row (``main``: the
    array's hits; ``muon``: KM2A's muon detectors', else None). ``noise`` holds the truth label where the
    hit table has a ``NOISE`` column (simulations), else False."""

    def __init__(self, table: dict, main: Hits, muon: Hits | None, instrument: str, has_truth: bool,
                 noise_rate_hz: float | None = None):  # fmt: skip
        self.table, self.main, self.muon, self.instrument, self.has_truth = table, main, muon, instrument, has_truth
        self.layout, self.muon_layout = layout_for(instrument)
        # the simulated dark-count rate (None: the layout's default, or unknown for real hits)
        self.noise_rate_hz = float(self.layout.noise_rate_hz if noise_rate_hz is None else noise_rate_hz)

    @property
    def n(self) -> int:
        return self.main.n_showers


def _check_hits(hits: dict, where: str, layout, muon_layout, instrument: str) -> None:
    missing = [c for c in HIT_COLUMNS if c not in hits]
    if missing:
        what = "times" if "TIME_NS" in missing else "columns"
        raise ShowerMLError(
            f"{where}: the hit table has no {what} {missing}; the shower networks need every hit's "
            "detector, signal and arrival time: write hits with `skyfit showers simulate --hits`"
        )
    t = np.asarray(hits["TIME_NS"], float)
    if t.size and not np.all(np.isfinite(t)):
        raise ShowerMLError(
            f"{where}: {int(np.sum(~np.isfinite(t)))} hits have no finite TIME_NS; drop or repair those hits first"
        )
    det, kind = np.asarray(hits["DETECTOR"]), np.asarray(hits["MUON_LAYOUT"])
    for k, lay in ((1, muon_layout), (0, layout)):  # muon hits first: they name the other array best
        d = det[kind == k]
        if d.size and lay is None:
            raise ShowerMLError(
                f"{where}: {d.size} muon-detector hits, but {instrument} has no muon detectors; "
                "the hits are from another array (KM2A?)"
            )
        if d.size and (d.min() < 0 or d.max() >= lay.n):
            raise ShowerMLError(
                f"{where}: detector indices up to {int(d.max())}, but the {instrument} "
                f"{'muon ' if k else ''}layout has {lay.n} detectors: the hits are from another array"
            )


def event_hits(table: dict, hits: dict, instrument: str, where: str = "hits", require_hits: bool = True) -> EventHits:
    """Join an event table (``EVENT_ID`` per row) to its hit table (``EVENT_ID, DETECTOR, SIGNAL, TIME_NS,
    MUON_LAYOUT`` and optionally ``NOISE``). Hits of events not in the table are ignored; an event without
    hits on the main array raises :class:`ShowerMLError` (listing the first ids) when ``require_hits``."""
    instrument = str(instrument).upper()
    layout, muon_layout = layout_for(instrument)
    _check_hits(hits, where, layout, muon_layout, instrument)
    if "EVENT_ID" not in table:
        raise ShowerMLError(f"{where}: the event table has no EVENT_ID column to join its hits on")
    ids = np.asarray(table["EVENT_ID"], np.int64)
    order = np.argsort(ids, kind="stable")
    if np.any(np.diff(ids[order]) == 0):
        raise ShowerMLError(f"{where}: EVENT_ID repeats in the event table; the ids must be unique")
    has_truth = "NOISE" in hits
    index: dict = {}

    def make(kind):
        s = np.flatnonzero(np.asarray(hits["MUON_LAYOUT"]) == kind)
        hid = np.asarray(hits["EVENT_ID"], np.int64)[s]
        pos = np.searchsorted(ids[order], hid)
        ok = (pos < ids.size) & (ids[order][np.minimum(pos, ids.size - 1)] == hid)
        s, row = s[ok], order[pos[ok]]
        o = np.argsort(row, kind="stable")
        s, row = s[o], row[o]
        noise = np.asarray(hits["NOISE"], bool)[s] if has_truth else np.zeros(s.size, bool)
        index[kind] = s
        return Hits(row, np.asarray(hits["DETECTOR"], np.int64)[s], np.asarray(hits["SIGNAL"], float)[s],
                    np.asarray(hits["TIME_NS"], float)[s], noise, ids.size)  # fmt: skip

    main = make(0)
    if require_hits:
        empty = np.flatnonzero(np.bincount(main.shower, minlength=ids.size) == 0)
        if empty.size:
            raise ShowerMLError(
                f"{where}: {empty.size} events have no hits (EVENT_ID {ids[empty[:5]].tolist()}"
                f"{' ...' if empty.size > 5 else ''}); drop them from the event table first"
            )
    out = EventHits(table, main, make(1) if muon_layout is not None else None, instrument, has_truth)
    out.main_index = index[0]  # each main-array hit's row in the hit table
    return out


def _mlp(n_in: int, n_out: int, width: int, depth: int, seed: int):
    import equinox as eqx
    import jax

    return eqx.nn.MLP(n_in, n_out, width, depth, activation=jax.nn.gelu, key=jax.random.PRNGKey(seed))


def mlp_apply(net, x):
    import jax
    import jax.numpy as jnp

    return jax.vmap(net)(jnp.asarray(x))


def _loss_fn(kind: str):
    import jax
    import jax.numpy as jnp

    def loss(net, x, y, w):
        out = jax.vmap(net)(x)
        if kind == "softmax":
            ll = jnp.take_along_axis(jax.nn.log_softmax(out), y[:, None].astype(jnp.int32), 1)[:, 0]
            per = -ll
        elif kind == "binary":
            per = jnp.logaddexp(0.0, out[:, 0]) - y * out[:, 0]
        else:  # gaussian: out = (means..., log sigmas...)
            k = y.shape[1]
            mu, ls = out[:, :k], jnp.clip(out[:, k:], -7.0, 7.0)
            per = jnp.sum(0.5 * ((y - mu) * jnp.exp(-ls)) ** 2 + ls, 1)
        return jnp.sum(w * per) / jnp.sum(w)

    return loss


def make_step(loss, opt):
    """A jitted optimiser step ``(net, state, *batch) -> (net, state, loss value)`` of ``loss(net, *batch)``."""
    import equinox as eqx

    @eqx.filter_jit
    def step(net, state, *batch):
        value, grads = eqx.filter_value_and_grad(loss)(net, *batch)
        updates, state = opt.update(grads, state, eqx.filter(net, eqx.is_array))
        return eqx.apply_updates(net, updates), state, value

    return step


def train_mlp(x, y, kind: str, n_out: int, w=None, width: int = 64, depth: int = 3, epochs: int = 30,
              batch: int = 512, lr: float = 3e-3, seed: int = 0, progress: str | None = None):  # fmt: skip
    """An equinox MLP trained with AdamW (cosine schedule) on standardised ``x``; ``kind``: 'softmax'
    (``y`` class indices), 'binary' (``y`` 0/1, one logit) or 'gaussian' (``y`` (n, k), outputs k means and k
    log sigmas). 20 % of the rows (drawn with ``seed``) are held out; the epoch with the lowest held-out
    loss is kept. Returns (net, (mean, scale) of the inputs, history of held-out losses)."""
    import equinox as eqx
    import jax.numpy as jnp
    import optax

    x = np.asarray(x, np.float64)
    if x.ndim != 2 or x.shape[0] < 10:
        raise ShowerMLError(f"training needs at least 10 rows of features, got shape {x.shape}")
    if not np.all(np.isfinite(x)):
        raise ShowerMLError(f"{int(np.sum(~np.isfinite(x)))} training features are not finite")
    mean, scale = x.mean(0), x.std(0) + 1e-9
    xs = (x - mean) / scale
    y = np.asarray(y, np.float64)
    w = np.ones(len(x)) if w is None else np.asarray(w, float) / np.mean(w)
    rng = np.random.default_rng(seed)
    perm = rng.permutation(len(x))
    n_val = max(len(x) // 5, 1)
    val, tr = perm[:n_val], perm[n_val:]
    net = _mlp(x.shape[1], n_out, width, depth, seed)
    steps = epochs * max(len(tr) // batch, 1)
    opt = optax.adamw(optax.cosine_decay_schedule(lr, steps), weight_decay=1e-4)
    state = opt.init(eqx.filter(net, eqx.is_array))
    loss = _loss_fn(kind)

    step = make_step(loss, opt)
    eval_loss = eqx.filter_jit(loss)
    xv, yv, wv = jnp.asarray(xs[val]), jnp.asarray(y[val]), jnp.asarray(w[val])
    best, best_net, history = np.inf, net, []
    for epoch in range(epochs):
        o = tr[rng.permutation(tr.size)]
        for i in range(max(len(o) // batch, 1)):
            b = o[i * batch : (i + 1) * batch]
            net, state, _ = step(net, state, jnp.asarray(xs[b]), jnp.asarray(y[b]), jnp.asarray(w[b]))
        v = float(eval_loss(net, xv, yv, wv))
        history.append(v)
        if v < best:
            best, best_net = v, net
        if progress:
            print(f"{progress}: epoch {epoch + 1}/{epochs}, held-out loss {v:.4f}", flush=True)
    return best_net, (mean, scale), history


def bootstrap_interval(stat, n: int, seed: int = 0, n_boot: int = 200) -> tuple:
    """(value, 16th, 84th percentile) of ``stat(index)`` over bootstrap resamples of ``n`` test rows."""
    rng = np.random.default_rng(seed)
    value = stat(np.arange(n))
    draws = [stat(rng.integers(0, n, n)) for _ in range(n_boot)]
    lo, hi = np.nanpercentile(draws, [16, 84]) if np.isfinite(draws).any() else (np.nan, np.nan)
    return float(value), float(lo), float(hi)
