"""Fixed-shape likelihood programs: what a :class:`~skyfit.likelihood.Likelihood` compiles depends on its
model's *kinds* of sources, not on how many there are, where they sit, or which parameters are free.

A model is split into a static plan (per dataset: the diffuse bands and templates evaluated one by one,
the groups of compact sources of one spatial and spectral type evaluated together, the background's
mode) and data (the flat vector's index of every parameter, each group's cut-out pixels and masks, the
priors). Group sizes, cut-out widths and the parameter vector are padded to the sizes of
:func:`bucket` (1, 2, 3, 4, 6, 8, 12, 16, ...): a padded slot repeats the group's first source with weight
0. Two likelihoods with the same plan key share one set of compiled functions (:func:`shared`), and
arrays of the same padded shapes reuse its compiled programs: a component added, removed, split, made a
point, or frozen compiles nothing new unless a group crosses a bucket's edge. Which parameters are free
was already data (the flat vector holds frozen ones too).
"""

from __future__ import annotations

from collections import OrderedDict
from typing import NamedTuple

import numpy as np

__all__ = ["Plan", "bucket", "build_plan", "shared"]

# compiled-function sets kept for reuse by later likelihoods of the same plan key
CACHE_SIZE = 32
_SHARED: OrderedDict = OrderedDict()


def bucket(n: int) -> int:
    """The smallest of 1, 2, 3, 4, 6, 8, 12, 16, 24, 32, ... at least ``n``: padding costs at most a third
    of the padded work."""
    n = max(int(n), 1)
    if n <= 4:
        return n
    p = 1 << (n - 1).bit_length()
    return p * 3 // 4 if n <= p * 3 // 4 else p


def _model_key(m) -> tuple:
    """What of a spatial or spectral model the compiled program depends on: its type, frame, parameter
    names and any further settings (e.g. a template's file), never the parameters' values."""
    extra = m.extra_dict() if hasattr(m, "extra_dict") else {}
    return type(m), getattr(m, "frame", None), tuple(q.name for q in m.parameters), repr(sorted(extra.items()))


def source_key(s) -> tuple:
    return _model_key(s.spatial), _model_key(s.spectral)


class DatasetPlan(NamedTuple):
    singles: tuple  # Sources evaluated one by one (per-pixel exposure: diffuse bands, templates)
    groups: tuple  # per group of compact sources: the first Source, standing for the group's kind
    background: str | None  # the BackgroundNorm's mode, None without one


class Plan(NamedTuple):
    datasets: tuple  # DatasetPlan per dataset
    size: int  # the flat vector's padded length

    def key(self) -> tuple:
        return tuple(
            (tuple(source_key(s) for s in d.singles), tuple(source_key(s) for s in d.groups), d.background)
            for d in self.datasets
        )


def width_class(n: int) -> int:
    """``n`` rounded up to a multiple of 1/16 of the power of two below it (2048-4095: of 128): a
    source's cut-out changes by a few pixels whenever it moves, which alone would compile anew."""
    n = max(int(n), 1)
    step = 1 << max(n.bit_length() - 5, 0)
    return -(-n // step) * step


def _padded_sets(index_sets, rows: int) -> tuple[np.ndarray, np.ndarray]:
    """Pixel index sets as one (rows, width_class(width)) index array, padded with pixel 0, and its 0/1 mask."""
    width = width_class(max(c.size for c in index_sets))
    idx = np.zeros((rows, width), dtype=np.int64)
    mask = np.zeros((rows, width))
    for j, c in enumerate(index_sets):
        idx[j, : c.size], mask[j, : c.size] = c, 1.0
    return idx, mask


def _group_data(i, members, slots, index, cutouts, cores, n_pix, cut: bool) -> dict:
    """A group's data: parameter indices (n_parameters, slots), slot weights, cut-out and core pixels."""
    cols = [[index[f"{s.name}.{q.name}"] for q in s.parameters] for s in members]
    cols += [cols[0]] * (slots - len(members))  # padded slots repeat the first source, weight 0
    live = np.zeros(slots)
    live[: len(members)] = 1.0
    data = {"pidx": np.asarray(cols, dtype=np.int64).T, "live": live}
    core_sets = [cores[(i, s.name)] for s in members] if (i, members[0].name) in cores else None
    if core_sets is not None and max(c.size for c in core_sets) == 0:  # wide enough for pixel centres
        core_sets = None
    if cut:
        idx, mask = _padded_sets([cutouts[(i, s.name)] for s in members], slots)
        if core_sets is not None:  # the core's pixels come from the sub-pixels
            for j, c in enumerate(core_sets):
                mask[j] *= ~np.isin(idx[j], c)
        data.update(idx=idx, mask=mask)
    elif core_sets is not None:
        mask = np.zeros((slots, n_pix))
        mask[: len(members)] = 1.0
        for j, c in enumerate(core_sets):
            mask[j, c] = 0.0
        data["mask"] = mask
    if core_sets is not None:
        data["core_idx"], data["core_mask"] = _padded_sets(core_sets, slots)
    return data


def build_plan(model, datasets, keys, cutouts: dict, cores: dict, prior) -> tuple[Plan, dict]:
    """The static plan and the data of ``model`` over ``datasets`` (``keys``: the flat vector's parameter
    keys; ``cutouts``/``cores``: {(dataset index, source name): pixel indices}; ``prior``: a
    :class:`~skyfit.likelihood.GaussianPriorTerm`)."""
    index = {k: j for j, k in enumerate(keys)}
    plans, data = [], []
    for i, d in enumerate(datasets):
        singles, buckets = [], {}
        for s in model.sources:
            if not s.applies_to(d.name):
                continue
            if s.spatial.per_pixel_exposure:
                singles.append(s)
                continue
            idx = cutouts.get((i, s.name))
            size = None if idx is None else int(np.ceil(2 * np.log2(max(idx.size, 2))))  # sqrt(2) buckets
            buckets.setdefault((source_key(s), size), []).append(s)
        groups, group_data = [], []
        for (_, size), members in buckets.items():
            groups.append(members[0])
            group_data.append(_group_data(i, members, bucket(len(members)), index, cutouts, cores, d.roi.n_pix,
                                          cut=size is not None))  # fmt: skip
        bkg = model.background(d.name)
        plans.append(DatasetPlan(tuple(singles), tuple(groups), None if bkg is None else bkg.mode))
        data.append({
            "singles": tuple(np.array([index[f"{s.name}.{q.name}"] for q in s.parameters], dtype=np.int64)
                             for s in singles),
            "groups": tuple(group_data),
            "background": None if bkg is None else np.array([index[f"{bkg.name}.{q.name}"] for q in bkg.parameters],
                                                            dtype=np.int64),
        })  # fmt: skip
    prior_data = None
    if prior.index.size:
        n = bucket(prior.index.size)
        w = np.zeros(n)
        w[: prior.index.size] = 1.0
        pad = n - prior.index.size
        prior_data = {"idx": np.pad(prior.index.astype(np.int64), (0, pad)), "mean": np.pad(prior.mean, (0, pad)),
                      "sigma": np.pad(prior.sigma, (0, pad), constant_values=1.0), "w": w}  # fmt: skip
    return Plan(tuple(plans), bucket(len(keys))), {"datasets": tuple(data), "prior": prior_data}


def shared(key, make):
    """The compiled-function set of plan ``key``, made by ``make()`` when no likelihood made it before
    (the last :data:`CACHE_SIZE` kept)."""
    try:
        fns = _SHARED.pop(key)
    except KeyError:
        fns = make()
    except TypeError:  # an unhashable setting in a model: compiled for this likelihood alone
        return make()
    _SHARED[key] = fns
    while len(_SHARED) > CACHE_SIZE:
        _SHARED.popitem(last=False)
    return fns
