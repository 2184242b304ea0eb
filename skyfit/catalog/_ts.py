"""The TS tests of one ROI's components: each one's TS with its neighbours refitted, the pairs that stand in
for each other, the components screened out without fits, and the ones dropped per round of pruning."""

from __future__ import annotations

from ..detect.components import RoiFitter, components, freeze_far, neighbours, separation_deg, share_data
from ..detect.config import DetectionConfig
from ..fit import FitResult


class _ComponentTS:
    """Per-component TS: the fit with the component's amplitude fixed at zero (its other parameters frozen,
    the components within ``cfg.local_radius_deg`` refitted, the others frozen) against the full fit.
    Components that stand in for each other (:meth:`hold`) are each tested with the other held in place
    (position and r39 fixed). ``extra_fits`` counts the checks of the full fit (see :meth:`__call__`)."""

    def __init__(self, cfg: DetectionConfig, log):
        self.cfg = cfg
        self.log = log
        self.partners: dict = {}
        self.extra_fits = 0

    def hold(self, a: str, b: str) -> None:
        """Test ``a`` with ``b`` held in place, and ``b`` with ``a``."""
        self.partners.setdefault(a, set()).add(b)
        self.partners.setdefault(b, set()).add(a)

    def __call__(self, res: FitResult, fitter: RoiFitter, only=None) -> dict:
        """TS of the components of ``res`` (those in ``only``, default all), the null fits by ``fitter``."""
        cfg, partners = self.cfg, self.partners
        out, stat0 = {}, {}
        full = fitter.data_stat(res.model, res.stat)
        present = {s.name: s for s in components(res.model)}
        for s in components(res.model):
            if only is not None and s.name not in only:
                continue
            key = f"{s.name}.amplitude"
            local = freeze_far(res.model, s, cfg.local_radius_deg)
            held = [f"{p}.{q.name}" for p in partners.get(s.name, ()) if p in present
                    for q in present[p].spatial.parameters]  # fmt: skip
            null = local.with_values({key: 0.0}).with_frozen([f"{s.name}.{q.name}" for q in s.parameters] + held)
            free = [k for k, q in null.parameters().items() if not q.frozen]
            stat0[s.name] = fitter.fit_stat(null) if free else fitter.stat_of(null)
            out[s.name] = max(stat0[s.name] - full, 0.0)
        weak = [k for k, v in out.items() if v < cfg.ts_add]
        if weak:
            # about to be pruned: check that the full fit is at its minimum (a many-source MIGRAD can
            # stop short, and a null fit would then gain what the full one left, hiding a real source);
            # one refit of the whole model from its minimum serves every weak component
            stat1 = fitter.fit_stat(res.model)
            self.extra_fits += 1
            if stat1 < full - 0.1:
                self.log(f"  a refit lowers the full fit by {full - stat1:.2f}")
                for k in weak:
                    out[k] = max(stat0[k] - stat1, 0.0)
        return out


def _stand_ins(result: FitResult, fitter: RoiFitter, ts: dict, cfg: DetectionConfig) -> tuple[list, int]:
    """Pairs of components that stand in for each other: same detector, closer than ``cfg.blend_deg`` + both
    r39, and removing both costs more than ``cfg.ts_add`` beyond the sum of their TS (each one's TS only
    measures what the other cannot take over: a bright source fitted by two components can leave both
    below the catalogue threshold). Returns ``([(a, b, ts_group), ...], fits run)``."""
    comps = components(result.model)
    full = fitter.data_stat(result.model, result.stat)
    found, n = [], 0
    for i, a in enumerate(comps):
        for b in comps[i + 1 :]:
            r39 = sum(float(dict((q.name, q.value) for q in c.spatial.parameters).get("sigma", 0.0)) for c in (a, b))
            if not (share_data(a, b) and separation_deg(a, b) <= cfg.blend_deg + r39):
                continue
            local = freeze_far(result.model, a, cfg.local_radius_deg)
            null = local.with_values({f"{a.name}.amplitude": 0.0, f"{b.name}.amplitude": 0.0}).with_frozen(
                [f"{c.name}.{q.name}" for c in (a, b) for q in c.parameters]
            )
            free = [k for k, q in null.parameters().items() if not q.frozen]
            ts_group = max((fitter.fit_stat(null) if free else fitter.stat_of(null)) - full, 0.0)
            n += 1
            if ts_group > ts.get(a.name, 0.0) + ts.get(b.name, 0.0) + cfg.ts_add:
                found.append((a.name, b.name, float(ts_group)))
    return found, n


def _to_drop(weak: list, comps: dict, radius_deg: float) -> list:
    """The components of ``weak`` (names, weakest first) dropped in one round of backward elimination:
    the weakest of each neighbourhood, per detector (a WCDA and a KM2A component never stand in for
    each other, so both can go in the same round)."""
    drop = []
    for k in weak:
        if not any(neighbours(comps[k], comps[d], radius_deg) for d in drop):
            drop.append(k)
    return drop


def _screen(result: FitResult, fitter: RoiFitter, cfg: DetectionConfig) -> tuple[list, dict]:
    """Components that cannot pass the TS test, found by likelihood evaluations instead of fits.

    A component's TS with its neighbours frozen (no refit) is an upper bound of its TS with them
    refitted, so one below ``ts_add`` fails the test for sure. Neighbours that could stand in for each
    other are dropped together only when their joint no-refit TS is below ``ts_add`` too: then no
    source that the group describes together is lost. Returns (names to drop, no-refit TS)."""
    values = result.model.values()
    lk = fitter.lk
    stat_full = lk.stat(lk.vector(values))
    comps = {s.name: s for s in components(result.model)}
    ts0 = {k: lk.stat(lk.vector({**values, f"{k}.amplitude": 0.0})) - stat_full for k in comps}
    weak = [k for k in comps if ts0[k] < cfg.ts_add]
    clusters, seen = [], set()
    for k in weak:  # groups of weak components linked by separations within local_radius_deg
        if k in seen:
            continue
        group, todo = [], [k]
        seen.add(k)
        while todo:
            a = todo.pop()
            group.append(a)
            for b in weak:
                if b not in seen and separation_deg(comps[a], comps[b]) <= cfg.local_radius_deg:
                    seen.add(b)
                    todo.append(b)
        clusters.append(group)
    drop = []
    for group in clusters:
        joint = lk.stat(lk.vector({**values, **{f"{k}.amplitude": 0.0 for k in group}})) - stat_full
        if joint < cfg.ts_add:
            drop += group
        else:  # together they may describe a source: the fitted tests decide (the weakest goes if it adds
            weakest = min(group, key=ts0.get)  # nothing even with its neighbours frozen)
            if ts0[weakest] < 1.0:
                drop.append(weakest)
    return drop, ts0
