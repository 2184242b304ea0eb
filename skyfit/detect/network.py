"""The prior network itself: its architecture, its file (read and write) and its proposals.

Training, validation and calibration are in :mod:`skyfit.detect.training`; :mod:`skyfit.detect.prior`
describes the network and gathers both.
"""

from __future__ import annotations

import functools
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np

from .._netfile import read_net, restore_net, save_net
from ._skies import CHANNEL_GROUPS, DETECTORS, GRID_DEG, N_CHANNELS, Grid, residual_image

__all__ = ["PriorModel", "PriorError", "load_prior", "propose", "SHIPPED_WEIGHTS", "MODEL_VERSION", "MODEL_FORMAT",
           "DEFAULT_HYPER", "N_OUT", "build_network"]  # fmt: skip

MODEL_FORMAT = "skyfit-prior"
MODEL_VERSION = 1
SHIPPED_WEIGHTS = Path(__file__).with_name("prior_weights.npz")
N_OUT = 8  # per detector: heat, dl, db, log sigma pos, r39, log sigma r39, log10 counts, log sigma


class PriorError(ValueError):
    """A prior network file is missing, corrupt or of another version (names the file and the fix)."""


def build_network(hyper: dict, key):
    """A prior network of the sizes in ``hyper`` (``width``, ``dilations``), initialised from the JAX PRNG
    ``key``, in float32."""
    import equinox as eqx
    import jax

    class PriorNet(eqx.Module):
        layers: list
        head: eqx.nn.Conv2d

        def __init__(self, width, dilations, key):
            keys = jax.random.split(key, len(dilations) + 1)
            chans = [N_CHANNELS] + [width] * len(dilations)
            self.layers = [eqx.nn.Conv2d(chans[k], chans[k + 1], 3, padding=d, dilation=d, key=keys[k])
                           for k, d in enumerate(dilations)]  # fmt: skip
            head = eqx.nn.Conv2d(width, 2 * N_OUT, 1, key=keys[-1])
            bias = np.zeros((2 * N_OUT, 1, 1), np.float32)
            bias[[0, N_OUT]] = -4.0  # heat starts at p ~ 0.02: most cells hold no component
            self.head = eqx.tree_at(lambda c: c.bias, head, jax.numpy.asarray(bias))

        def __call__(self, x):
            h = x
            for k, conv in enumerate(self.layers):
                y = jax.nn.gelu(conv(h))
                h = y if k == 0 else h + y
            return self.head(h)

    net = PriorNet(int(hyper["width"]), tuple(int(d) for d in hyper["dilations"]), key)
    # float32 throughout (skyfit enables float64 for the likelihood; a proposal needs no more)
    return jax.tree_util.tree_map(lambda a: a.astype(np.float32) if eqx.is_array(a) else a, net)


DEFAULT_HYPER = {"width": 32, "dilations": [1, 2, 4, 8, 16, 1]}


@dataclass
class PriorModel:
    """A trained prior network, its calibration and its training record."""

    net: object
    hyper: dict
    calibration: dict = field(default_factory=lambda: {d: {"pos": 1.0, "r39": 1.0, "counts": 1.0} for d in DETECTORS})
    threshold: float = 0.3
    meta: dict = field(default_factory=dict)

    def save(self, path) -> Path:
        header = {"format": MODEL_FORMAT, "version": MODEL_VERSION, "hyper": self.hyper,
                  "channel_groups": {d: [list(g) for g in gs] for d, gs in CHANNEL_GROUPS.items()},
                  "grid_deg": GRID_DEG, "calibration": self.calibration, "threshold": self.threshold,
                  "meta": self.meta}  # fmt: skip
        return save_net(path, header, self.net)

    def predict_maps(self, image: np.ndarray) -> np.ndarray:
        """The raw output maps (2 N_OUT, nb, nl) for one image."""
        return np.asarray(_forward()(self.net, image))

    def propose(self, image: np.ndarray, grid: Grid, threshold: float | None = None, inside=None) -> list[dict]:
        """Components found in ``image`` (on ``grid``): per heat-map peak above ``threshold`` a dict with
        detector, l, b, ra, dec, sigma_pos (deg), r39, sigma_r39, log10_counts, sigma_log10_counts, score.
        ``inside`` (nb, nl) bool restricts the peaks to those cells."""
        from scipy.special import expit

        from ._skies import _icrs

        out = self.predict_maps(image)
        thr = self.threshold if threshold is None else threshold
        rows = []
        for k, det in enumerate(DETECTORS):
            o = out[k * N_OUT : (k + 1) * N_OUT]
            p = expit(o[0].astype(float))
            pad = np.pad(p, 1, constant_values=-1.0)
            neigh = np.max([pad[1 + a : 1 + a + p.shape[0], 1 + b : 1 + b + p.shape[1]]
                            for a in (-1, 0, 1) for b in (-1, 0, 1)], axis=0)  # fmt: skip
            peak = (p >= neigh) & (p >= thr)
            if inside is not None:
                peak &= inside
            cal = self.calibration[det]
            # an extended component makes a broad heat map with several local maxima: a peak within the
            # predicted r39 of a stronger one is that component again, not another
            cells = sorted(zip(*np.nonzero(peak), strict=True), key=lambda c: -p[c])
            kept_cells = []
            for j, i in cells:
                if all(np.hypot(i - b, j - a) * grid.step > max(o[4, a, b], 0.0) for a, b in kept_cells):
                    kept_cells.append((j, i))
            for j, i in kept_cells:
                lon = grid.l0 + (i + o[1, j, i]) * grid.step
                lat = grid.b0 + (j + o[2, j, i]) * grid.step
                ra, dec = (float(v) for v in _icrs(lon, lat))
                rows.append({
                    "detector": det, "l": float(lon % 360.0), "b": float(lat), "ra": ra, "dec": dec,
                    "sigma_pos": float(np.exp(o[3, j, i]) * grid.step * cal["pos"]),
                    "r39": float(max(o[4, j, i], 0.0)),
                    "sigma_r39": float(np.hypot(np.exp(o[5, j, i]) * cal["r39"], cal.get("r39_floor", 0.0))),
                    "log10_counts": float(o[6, j, i]), "sigma_log10_counts": float(np.exp(o[7, j, i]) * cal["counts"]),
                    "score": float(p[j, i]),
                })  # fmt: skip
        return rows


@functools.lru_cache(maxsize=1)
def _forward():
    import equinox as eqx
    import jax.numpy as jnp

    @eqx.filter_jit
    def f(net, x):
        return net(jnp.asarray(x, jnp.float32))

    return f


def load_prior(path=None) -> PriorModel:
    """Read a prior network (default: the weights shipped with skyfit). A missing or corrupt file, or
    one of another format version, raises :class:`PriorError` naming the file."""
    import jax

    path = Path(path) if path is not None else SHIPPED_WEIGHTS
    fix = (
        "reproduce it with `skyfit prior train --replace-shipped`"
        if path == SHIPPED_WEIGHTS
        else f"train one with `skyfit prior train --outdir {path.parent}` (it writes prior_weights.npz there)"
    )
    header, leaves = read_net(path, "prior network", fix, PriorError)
    if header.get("format") != MODEL_FORMAT or header.get("version") != MODEL_VERSION:
        raise PriorError(
            f"{path}: network format {header.get('format')!r} version {header.get('version')!r}, this skyfit reads "
            f"{MODEL_FORMAT!r} version {MODEL_VERSION}; {fix}"
        )
    groups = {d: [list(g) for g in gs] for d, gs in CHANNEL_GROUPS.items()}
    if header.get("channel_groups") != groups or header.get("grid_deg") != GRID_DEG:
        raise PriorError(f"{path}: trained on other input channels or grid than this skyfit makes; {fix}")
    try:
        skeleton = build_network(header["hyper"], jax.random.PRNGKey(0))
    except (KeyError, TypeError, ValueError) as exc:
        raise PriorError(f"{path}: bad network sizes in the header ({exc}); the file is corrupt; {fix}") from None
    net = restore_net(skeleton, leaves, path, PriorError)
    return PriorModel(net=net, hyper=header["hyper"], calibration=header["calibration"],
                      threshold=float(header["threshold"]), meta=header.get("meta", {}))  # fmt: skip


def propose(datasets, mus, model: PriorModel | None = None, threshold: float | None = None,
            edge_deg: float = 0.0) -> list[dict]:  # fmt: skip
    """Proposals of ``model`` (default: the shipped network) for ``datasets`` (one ROI, WCDA and/or
    KM2A) given their current predictions ``mus`` without the sources to find."""
    model = model or load_prior()
    grid = Grid.covering(datasets[0].roi)
    image = residual_image(datasets, mus, grid)
    inside = image[-1] > 0
    if edge_deg > 0:  # cells at least edge_deg from the ROI's edge
        from scipy.ndimage import binary_erosion

        inside = binary_erosion(inside, iterations=int(np.ceil(edge_deg / grid.step)))
    return model.propose(image, grid, threshold, inside)
