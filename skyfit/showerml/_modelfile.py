"""Shower-network model files: one ``.npz`` (:mod:`skyfit._netfile`) with a JSON header naming the task, the
array (instrument and a fingerprint of its detector positions), the simulation revision, the seeds and
the inputs' standardisation. Loading refuses another format, a model for another array or task, and a
model trained on another revision of the shower simulation, naming the file and the fix."""

from __future__ import annotations

import hashlib
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np

from .._netfile import read_net, restore_net, save_net
from ..showers import physics
from ._common import ShowerMLError, layout_for, mlp_apply

__all__ = ["ShowerModel", "load_shower_model", "layout_fingerprint", "TASKS"]

MODEL_FORMAT, MODEL_VERSION = "skyfit-shower-net", 1
TASKS = ("mass", "noise", "reco")


def layout_fingerprint(instrument: str) -> str:
    """sha256 (first 16 hex digits) of the array's detector positions (both layouts for KM2A)."""
    h = hashlib.sha256()
    for lay in layout_for(instrument):
        if lay is not None:
            h.update(np.ascontiguousarray(lay.x, np.float64).tobytes())
            h.update(np.ascontiguousarray(lay.y, np.float64).tobytes())
    return h.hexdigest()[:16]


@dataclass
class ShowerModel:
    """A trained shower network: ``task`` ('mass', 'noise' or 'reco'), its ``instrument``, the MLP
    (``net``, ``hyper``: n_in, n_out, width, depth), input standardisation and task ``meta`` (thresholds,
    calibrations, seeds, sample sizes)."""

    task: str
    instrument: str
    features: tuple
    hyper: dict
    net: object
    mean: np.ndarray
    scale: np.ndarray
    meta: dict = field(default_factory=dict)

    def outputs(self, x, batch: int = 65536) -> np.ndarray:
        """The network's raw outputs for the feature rows ``x`` (columns in ``features`` order)."""
        x = np.asarray(x, float)
        if x.ndim != 2 or x.shape[1] != len(self.features):
            raise ShowerMLError(f"the {self.task} model reads {len(self.features)} features, got shape {x.shape}")
        xs = (x - self.mean) / self.scale
        out = [np.asarray(mlp_apply(self.net, xs[s : s + batch]), np.float64) for s in range(0, len(xs), batch)]
        return np.concatenate(out) if out else np.zeros((0, self.hyper["n_out"]))

    def check_array(self, instrument: str, where: str = "input") -> None:
        if str(instrument).upper() != self.instrument:
            raise ShowerMLError(f"{where} is {str(instrument).upper()} data, this is a {self.instrument} {self.task} "
                                f"model: apply it to {self.instrument} events and hits, or train a {self.task} "
                                f"model for {str(instrument).upper()} where the task exists "
                                "(`skyfit showers train`)")  # fmt: skip

    def save(self, path) -> Path:
        header = {
            "format": MODEL_FORMAT, "version": MODEL_VERSION, "task": self.task, "instrument": self.instrument,
            "layout": layout_fingerprint(self.instrument), "simulation_revision": physics.SIMULATION_REVISION,
            "features": list(self.features), "hyper": self.hyper, "mean": [float(v) for v in self.mean],
            "scale": [float(v) for v in self.scale], "meta": self.meta,
        }  # fmt: skip
        return save_net(path, header, self.net)


def load_shower_model(path, task: str | None = None, instrument: str | None = None) -> ShowerModel:
    """Read a shower-network file; every mismatch raises :class:`ShowerMLError` naming the file and fix."""
    from ._common import _mlp

    path = Path(path)
    fix = f"train one with `skyfit showers train --outdir {path.parent}`"
    header, leaves = read_net(path, "shower-network model", fix, ShowerMLError)
    if header.get("format") != MODEL_FORMAT or header.get("version") != MODEL_VERSION:
        raise ShowerMLError(f"{path}: format {header.get('format')!r} version {header.get('version')!r}, not a "
                            f"{MODEL_FORMAT!r} version {MODEL_VERSION} file (a g/h model? those load with "
                            "skyfit.ghsep.load_model); " + fix)  # fmt: skip
    if task is not None and header["task"] != task:
        raise ShowerMLError(
            f"{path}: a {header['task']!r} model, asked for a {task!r} one; train one with "
            f"`skyfit showers train --task {task}`"
        )
    if instrument is not None and str(instrument).upper() != header["instrument"]:
        raise ShowerMLError(f"{path}: a {header['instrument']} model, the input is {str(instrument).upper()} data; "
                            f"train a {str(instrument).upper()} model with `skyfit showers train --instrument "
                            f"{str(instrument).upper()}`")  # fmt: skip
    if header.get("layout") != layout_fingerprint(header["instrument"]):
        raise ShowerMLError(f"{path}: trained on another {header['instrument']} detector layout than this skyfit's; "
                            "retrain it")  # fmt: skip
    if header.get("simulation_revision") != physics.SIMULATION_REVISION:
        raise ShowerMLError(f"{path}: trained on shower-simulation revision {header.get('simulation_revision')!r}, "
                            f"this skyfit simulates {physics.SIMULATION_REVISION!r}; retrain it")  # fmt: skip
    hy = header["hyper"]
    skeleton = _mlp(hy["n_in"], hy["n_out"], hy["width"], hy["depth"], 0)
    if header["task"] == "reco":  # the per-hit direction network and the energy MLP
        skeleton = (skeleton, _mlp(len(header["meta"]["energy_features"]), 2, hy["energy_width"],
                                   hy["energy_depth"], 0))  # fmt: skip
    net = restore_net(skeleton, leaves, path, ShowerMLError)
    return ShowerModel(header["task"], header["instrument"], tuple(header["features"]), hy, net,
                       np.asarray(header["mean"]), np.asarray(header["scale"]), header.get("meta", {}))  # fmt: skip
