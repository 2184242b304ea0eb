"""Simulated samples for the shower tasks: events with their hits, from independent seeds.

Seeds: a task trains on ``seed``, tunes (thresholds, uncertainty scales) on ``seed + 1`` and is measured
on ``seed + 2`` (:func:`task_seeds`); the test seed must differ from both (:func:`check_test_seed`).
Mass groups (H, He, CNO, MgSi, Fe; :data:`MASS_GROUPS`) are drawn in equal numbers with one power law, so
that in every energy bin each group is a fifth of the sample (a random pick is 40 % light, 20 % H).
"""

from __future__ import annotations

import numpy as np

from ..showers import hits_table, simulate_shower_events
from ._common import EventHits, ShowerMLError, event_hits

__all__ = ["MASS_GROUPS", "shower_sample", "mass_sample", "task_seeds", "check_test_seed"]

MASS_GROUPS = ("H", "He", "CNO", "MgSi", "Fe")
_PARTICLE = {"H": "proton", "He": "He", "CNO": "CNO", "MgSi": "MgSi", "Fe": "Fe"}


def task_seeds(seed: int) -> dict:
    return {"train": int(seed), "tune": int(seed) + 1, "test": int(seed) + 2}


def check_test_seed(train_seed: int, test_seed: int) -> None:
    if test_seed in (train_seed, train_seed + 1):
        raise ShowerMLError(
            f"test seed {test_seed} is the model's training ({train_seed}) or tuning "
            f"({train_seed + 1}) seed; measure on an independent seed such as {train_seed + 2}"
        )


def shower_sample(instrument: str, particle: str, n: int, seed: int, e_min_tev: float, e_max_tev: float,
                  index: float = 2.0, noise_rate_hz: float | None = None, muon_scale: float = 1.0,
                  max_zenith_deg: float = 40.0, throw_radius_m: float | None = None) -> EventHits:  # fmt: skip
    """``n`` simulated showers of one particle with their hits (truth labels kept)."""
    recs: list = []
    table = simulate_shower_events(instrument, particle, n, e_min_tev=e_min_tev, e_max_tev=e_max_tev, index=index,
                                   max_zenith_deg=max_zenith_deg, throw_radius_m=throw_radius_m,
                                   noise_rate_hz=noise_rate_hz, seed=seed, hits_out=recs,
                                   muon_scale=muon_scale)  # fmt: skip
    order = np.argsort(table["EVENT_ID"])
    table = {k: v[order] for k, v in table.items()}
    eh = event_hits(table, hits_table(recs), instrument, where=f"simulated {particle} (seed {seed})",
                    require_hits=False)  # fmt: skip
    if noise_rate_hz is not None:
        eh.noise_rate_hz = float(noise_rate_hz)
    return eh


def _join(samples: list[EventHits]) -> EventHits:
    from ..showers import Hits

    table = {k: np.concatenate([s.table[k] for s in samples]) for k in samples[0].table}
    offsets = np.cumsum([0] + [s.n for s in samples])
    table["EVENT_ID"] = np.arange(offsets[-1], dtype=np.int64)

    def cat(get):
        hs = [get(s) for s in samples]
        if hs[0] is None:
            return None
        return Hits(np.concatenate([h.shower + o for h, o in zip(hs, offsets, strict=False)]),
                    *(np.concatenate([getattr(h, a) for h in hs]) for a in ("detector", "signal", "time", "noise")),
                    int(offsets[-1]))  # fmt: skip

    return EventHits(table, cat(lambda s: s.main), cat(lambda s: s.muon), samples[0].instrument, True,
                     samples[0].noise_rate_hz)  # fmt: skip


def mass_sample(n_per_group: int, seed: int, e_min_tev: float = 100.0, e_max_tev: float = 10_000.0,
                index: float = 2.0, muon_scale: float = 1.0, groups=MASS_GROUPS) -> EventHits:  # fmt: skip
    """KM2A showers of the five mass groups, ``n_per_group`` each (independent streams per group), with a
    ``GROUP`` column (0 H ... 4 Fe)."""
    parts = []
    for g_i, g in enumerate(groups):
        s = shower_sample("KM2A", _PARTICLE[g], n_per_group, seed * 100 + g_i, e_min_tev, e_max_tev, index,
                          muon_scale=muon_scale)  # fmt: skip
        s.table["GROUP"] = np.full(s.n, MASS_GROUPS.index(g), np.int8)
        parts.append(s)
    return _join(parts)
