"""Vectorised shower-to-hits simulation for WCDA-like and KM2A-like arrays.

Showers are processed in batches: every quantity is an array over (shower, detector). Randomness comes
from an explicit ``numpy.random.Generator``.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

import skyfit.showers.physics as ph

from .detectors import Layout

__all__ = ["sample_primaries", "simulate_hits", "leading_pi0_weight", "Hits", "C_M_PER_NS"]

C_M_PER_NS = 0.299792458
NOISE_WINDOW_NS = 1000.0


def sample_primaries(
    n: int,
    particle="gamma",
    e_min_tev: float = 0.3,
    e_max_tev: float = 30.0,
    index: float = 2.0,
    max_zenith_deg: float = 40.0,
    throw_radius_m: float = 400.0,
    rng=None,
) -> dict:
    """Primaries: power-law energies, isotropic directions (cos-weighted flux on a flat array), cores
    uniform in a disc of ``throw_radius_m`` (over and around the array).

    ``particle``: ``gamma``, ``proton``, ``He``, ``CNO``, ``MgSi``, ``Fe``, an element symbol or Z;
    the energy range must lie within 0.01-10,000 TeV.
    """
    rng = rng or np.random.default_rng()
    z = ph.species_z(particle)
    if not (0.01 <= e_min_tev < e_max_tev <= 1e4):
        raise ValueError(
            f"energies must satisfy 0.01 <= e_min < e_max <= 10000 TeV (the parametrisations' range); "
            f"got {e_min_tev}-{e_max_tev}"
        )
    if not (0 <= max_zenith_deg < 70):
        raise ValueError(f"max_zenith_deg must be in [0, 70), got {max_zenith_deg}")
    u = rng.uniform(size=n)
    if abs(index - 1) < 1e-9:
        e = e_min_tev * (e_max_tev / e_min_tev) ** u
    else:
        g = 1 - index
        e = (e_min_tev**g + u * (e_max_tev**g - e_min_tev**g)) ** (1 / g)
    cmin = np.cos(np.radians(max_zenith_deg))
    cos_z = np.sqrt(rng.uniform(cmin**2, 1.0, n))  # dN/dcos ~ cos: flux through a horizontal array
    r = throw_radius_m * np.sqrt(rng.uniform(size=n))
    phi = rng.uniform(0, 2 * np.pi, n)
    return {
        "ENERGY": e,
        "ZENITH": np.degrees(np.arccos(cos_z)),
        "AZIMUTH": rng.uniform(0, 360, n),
        "CORE_X": r * np.cos(phi),
        "CORE_Y": r * np.sin(phi),
        "Z": np.full(n, z, dtype=np.int16),
    }


@dataclass
class Hits:
    """Hits of a batch of showers, flat: ``shower`` index, detector index, signal, time (ns), noise flag."""

    shower: np.ndarray
    detector: np.ndarray
    signal: np.ndarray
    time: np.ndarray
    noise: np.ndarray
    n_showers: int


def _axis(zen_deg, az_deg):
    th, az = np.radians(zen_deg), np.radians(az_deg)
    # unit vector towards the source; local x east, y north, z up; azimuth from north through east
    return np.stack([np.sin(th) * np.sin(az), np.sin(th) * np.cos(az), np.cos(th)], axis=1)


def leading_pi0_weight(z, lead, sampled: float | None, probability: float | None = None) -> np.ndarray:
    """Importance weight of each shower whose leading-pion branch was drawn with probability ``sampled``
    instead of the physical ``probability`` (default :data:`physics.LEADING_PI0_PROBABILITY`): ``p / q``
    for a proton shower with a leading neutral pion, ``(1 - p) / (1 - q)`` for one without, 1 for other
    particles. Multiplied into an event's weight, it makes the sample one of the physical ``p``; the same
    with another ``probability`` reweights a sample to another value of the constant."""
    p = ph.LEADING_PI0_PROBABILITY if probability is None else float(probability)
    q = p if sampled is None else float(sampled)
    if not (0.0 <= p < 1.0 and 0.0 < q < 1.0):
        raise ValueError(f"leading-pion probabilities must lie in (0, 1): physical {p}, sampled {q}")
    proton = np.asarray(z) == 1
    return np.where(proton, np.where(np.asarray(lead, bool), p / q, (1.0 - p) / (1.0 - q)), 1.0)


def _draw_shower(rng, z, e, leading_pi0_sampling: float | None = None) -> dict:
    """The fluctuations of each shower, shared by the layouts of one array (see :func:`simulate_hits`)."""
    n = e.size
    x1 = ph.first_interaction_depth(rng, z, e)
    # gamma-like hadron showers: a leading neutral pion takes most of the energy in the first
    # interaction, so the shower is electromagnetic, muon-poor and compact (Maier & Knapp 2007); drawn
    # with probability ``leading_pi0_sampling`` when given (importance sampling: LEAD_WEIGHT corrects)
    q = ph.LEADING_PI0_PROBABILITY if leading_pi0_sampling is None else leading_pi0_sampling
    lead = (z == 1) & (rng.uniform(size=n) < q)
    # shower-to-shower fluctuations: first-interaction depth, plus 20 % log-normal on the size and
    # 10 % on the muon number
    size_fluct = np.exp(rng.normal(0, 0.2, n))
    mu_fluct = np.exp(rng.normal(0, 0.1, n))
    weight = leading_pi0_weight(z, lead, leading_pi0_sampling)
    # the leading pion's energy fraction x from dN/dx ~ (1 - x)^n on [x_min, 1]
    # (physics.LEADING_PI0_SPECTRUM_INDEX): 1 - x = (1 - x_min) R^(1 / (n + 1)); when importance-sampling,
    # 1 - x uniform instead, weighted by the density ratio (n + 1) ((1 - x) / (1 - x_min))^n, so that the
    # muon-poor showers (x near 1) that pass a muon cut are drawn often. 0 without a leading pion.
    x = np.zeros(n)
    k = int(lead.sum())
    if k:
        span, idx = 1.0 - ph.LEADING_PI0_X_MIN, ph.LEADING_PI0_SPECTRUM_INDEX
        if leading_pi0_sampling is None:
            x[lead] = 1.0 - span * rng.uniform(size=k) ** (1.0 / (idx + 1.0))
        else:
            u = span * rng.uniform(size=k)
            x[lead] = 1.0 - u
            weight[lead] *= (idx + 1.0) * (u / span) ** idx
    return {"X1": x1, "LEADING_PI0": lead, "LEAD_X": x, "SIZE_FLUCT": size_fluct, "MU_FLUCT": mu_fluct,
            "LEAD_WEIGHT": weight}  # fmt: skip


def _add_subcascades(mu_em, primaries, layout: Layout, rng, z, e_em, x1, slant, cos_t, proj, conv):
    """Off-axis electromagnetic sub-cascades of hadronic showers, added to ``mu_em`` in place; returns
    their number per shower. ``e_em``: the electromagnetic energy of each shower's hadronic part (of a
    gamma-like proton: its rest after the leading pion). They are compact, so only detectors within 60 m
    of each sub-cascade centre are evaluated (a k-d tree query)."""
    n = e_em.size
    hadron = (z > 0) & (e_em > 0)
    k = np.where(hadron, rng.poisson(ph.SUBCASCADES_PER_TEV * np.maximum(e_em, 1e-3) ** 0.4), 0)
    k = np.minimum(k, 12)
    owner = np.repeat(np.arange(n), k)
    if not owner.size:
        return k
    from scipy.spatial import cKDTree

    f32 = np.float32
    frac = 10 ** rng.uniform(-3.0, -1.3, owner.size)  # energy fraction, log-uniform (approximate)
    e_sub = e_em[owner] * frac
    # start: a little after the first interaction; distance from the axis h pT / E, with h
    # the slant distance from the start to the ground (deep showers: clumps near the core)
    start = x1[owner] + rng.uniform(0, 150, owner.size)
    h_km = (ph.altitude_km(start * cos_t[owner]) - ph.SITE_ALTITUDE_KM) / cos_t[owner]
    h_km = np.maximum(h_km, 0.1)
    dist = np.minimum(h_km * 1e3 * ph.PT_GEV / (e_sub * 1e3), 600.0) * rng.exponential(1.0, owner.size)
    ang = rng.uniform(0, 2 * np.pi, owner.size)
    sx = primaries["CORE_X"][owner] + dist * np.cos(ang)
    sy = primaries["CORE_Y"][owner] + dist * np.sin(ang)
    depth = np.maximum(slant[owner] - start, 1.0)
    s_size, s_age = ph.electron_size(e_sub, depth, np.zeros(owner.size, int))
    tree = cKDTree(np.stack([layout.x, layout.y], 1))
    lists = tree.query_ball_point(np.stack([sx, sy], 1), 60.0)
    lens = np.fromiter((len(li) for li in lists), int, len(lists))
    if lens.sum():
        src = np.repeat(np.arange(owner.size), lens)
        det = np.concatenate([np.asarray(li, int) for li in lists if li])
        rr = np.hypot(layout.x[det] - sx[src], layout.y[det] - sy[src])
        # sub-showers are young relative to the main one: a compact core (a quarter Moliere radius)
        dens = ph.nkg_density(rr * 4.0, s_size[src], s_age[src]) * 16.0
        np.add.at(mu_em, (owner[src], det), (dens * proj[owner[src], 0] * conv).astype(f32))
    return k


def _draw_signals(mu_em, mu_mu, layout: Layout, rng) -> tuple:
    """Hit detectors and their particle numbers and signals: ``(shower, detector, n_em, n_muon, signal)``.

    Compound Poisson: P(no signal) = exp(-mu_em (1 - e^-pe_em) - mu_mu (1 - e^-pe_mu)); the hits are
    drawn first, then the particle numbers and signals only where there is a hit (exact, conditional on
    >= 1)."""
    f32 = np.float32
    c_em = f32(1 - np.exp(-layout.pe_per_em)) if layout.photoelectrons else f32(1.0)
    c_mu = f32(1 - np.exp(-layout.pe_per_muon)) if layout.photoelectrons else f32(1.0)
    p_hit = -np.expm1(-(mu_em * c_em + mu_mu * c_mu))
    hit = rng.random(mu_em.shape, dtype=np.float32) < p_hit
    s_idx, d_idx = np.nonzero(hit)
    m_em = mu_em[s_idx, d_idx].astype(float)
    m_mu = mu_mu[s_idx, d_idx].astype(float)
    n_em = np.zeros(s_idx.size, np.int64)
    n_muon = np.zeros(s_idx.size, np.int64)
    signal = np.zeros(s_idx.size, float)
    todo = np.arange(s_idx.size)
    for _ in range(200):  # rejection: redraw the few with zero signal
        if todo.size == 0:
            break
        a_ = rng.poisson(m_em[todo])
        b_ = rng.poisson(m_mu[todo])
        if layout.photoelectrons:
            sg = rng.poisson(a_ * layout.pe_per_em) + rng.poisson(b_ * layout.pe_per_muon)
        else:
            sg = a_ * layout.pe_per_em + b_ * layout.pe_per_muon
        ok = sg >= layout.threshold
        n_em[todo[ok]], n_muon[todo[ok]], signal[todo[ok]] = a_[ok], b_[ok], sg[ok]
        todo = todo[~ok]
    keep = signal >= layout.threshold
    return s_idx[keep], d_idx[keep], n_em[keep], n_muon[keep], signal[keep]


def _add_noise(s_idx, d_idx, sig, t, layout: Layout, rng, n: int) -> tuple:
    """Uncorrelated noise hits (dark counts) in a window of ``NOISE_WINDOW_NS`` around each shower:
    ``(shower, detector, signal, time, noise flag)``."""
    noise_flag = np.zeros(s_idx.size, bool)
    if layout.noise_rate_hz > 0:
        per = layout.noise_rate_hz * NOISE_WINDOW_NS * 1e-9 * layout.n
        k_noise = rng.poisson(per, n)
        ns = np.repeat(np.arange(n), k_noise)
        nd = rng.integers(0, layout.n, ns.size)
        s_idx = np.concatenate([s_idx, ns])
        d_idx = np.concatenate([d_idx, nd])
        sig = np.concatenate([sig, 1.0 + rng.poisson(0.3, ns.size)])
        t = np.concatenate([t, rng.uniform(-NOISE_WINDOW_NS / 2, NOISE_WINDOW_NS / 2, ns.size)])
        noise_flag = np.concatenate([noise_flag, np.ones(ns.size, bool)])
    return s_idx, d_idx, sig, t, noise_flag


def simulate_hits(primaries: dict, layout: Layout, rng, truth: dict | None = None, shower: dict | None = None,
                  leading_pi0_sampling: float | None = None, muon_scale: float = 1.0) -> Hits:  # fmt: skip
    """Hits of ``primaries`` on ``layout``. ``truth`` (optional dict) receives per-shower truth
    (first-interaction depth, size, age, muon number, sub-cascades, and under ``"SHOWER"`` the drawn
    shower itself). ``shower``: a ``truth["SHOWER"]`` from a call on another layout of the same array
    (KM2A's muon detectors beside its electromagnetic ones), so that both layouts see the same showers:
    the same first interaction, leading pion, size and muon fluctuations; without it they are drawn.
    ``leading_pi0_sampling``: draw proton showers' leading neutral pion with this probability instead of
    the physical one, and their pion's energy fraction uniformly in 1 - x (importance sampling of the
    gamma-like protons); ``truth["LEAD_WEIGHT"]`` holds each shower's correcting weight
    (:func:`leading_pi0_weight` times the energy-fraction density ratio). ``muon_scale``: multiplies the
    muon number of nuclear showers (the hadronic-model uncertainty, about +-20 %; gammas unchanged)."""
    if not (np.isfinite(muon_scale) and muon_scale > 0):
        raise ValueError(f"muon_scale must be a positive number, got {muon_scale!r}")
    e = np.asarray(primaries["ENERGY"], float)
    z = np.asarray(primaries["Z"])
    n = e.size
    cos_t = np.cos(np.radians(primaries["ZENITH"]))
    nvec = _axis(primaries["ZENITH"], primaries["AZIMUTH"])
    slant = ph.SITE_DEPTH / cos_t
    if shower is None:
        shower = _draw_shower(rng, z, e, leading_pi0_sampling)
    elif len(shower["X1"]) != n:
        raise ValueError(f"shower holds {len(shower['X1'])} showers, primaries {n}: pass the same primaries")
    x1, lead = shower["X1"], shower["LEADING_PI0"]
    # a gamma-like proton: the leading pion's x E, and the rest (1 - x) E as a proton shower of that energy
    rest = np.where(lead, (1.0 - shower.get("LEAD_X", np.zeros(n))) * e, e)
    rest_em = rest * ph.em_energy_fraction(z, rest)
    e_em = np.where(lead, e - rest, 0.0) + rest_em
    z_eff = np.where(lead, 0, z)  # electromagnetic: develops like a photon shower
    size, age = ph.electron_size(e_em, np.maximum(slant - x1, 1.0), np.maximum(z_eff, 0))
    size = size * shower["SIZE_FLUCT"]
    # muons above this layout's threshold (the muon detectors' soil raises it)
    n_mu = ph.muon_number(z, rest, ph.muon_threshold_fraction(layout.muon_threshold_gev))
    n_mu = n_mu * shower["MU_FLUCT"]
    if muon_scale != 1.0:
        n_mu = n_mu * np.where(z > 0, muon_scale, 1.0)
    f32 = np.float32
    dx = (layout.x[None, :] - primaries["CORE_X"][:, None]).astype(f32)
    dy = (layout.y[None, :] - primaries["CORE_Y"][:, None]).astype(f32)
    along = dx * nvec[:, :1].astype(f32) + dy * nvec[:, 1:2].astype(f32)
    r = np.sqrt(np.maximum(dx * dx + dy * dy - along * along, f32(0)))
    del dx, dy
    proj = (layout.area_m2 * cos_t[:, None]).astype(f32)
    conv = f32(1.0 + layout.photon_conversion * ph.PHOTONS_PER_ELECTRON)
    if layout.em_sensitive:
        mu_em = ph.nkg_density(r, size[:, None].astype(f32), age[:, None].astype(f32)) * (proj * conv)
        k = _add_subcascades(mu_em, primaries, layout, rng, z, rest_em, x1, slant, cos_t, proj, conv)
        if truth is not None:
            truth["N_SUBCASCADES"] = k
    else:
        mu_em = np.zeros_like(r)
    mu_mu = ph.muon_density(r, n_mu[:, None].astype(f32), ph.muon_ldf_r0(x1, cos_t)[:, None]) * proj
    s_idx, d_idx, n_em, n_muon, signal = _draw_signals(mu_em, mu_mu, layout, rng)
    n_part = n_em + n_muon
    rh = r[s_idx, d_idx].astype(float)
    t = (
        -along[s_idx, d_idx].astype(float) / C_M_PER_NS
        + ph.front_delay_ns(rh)
        + ph.front_thickness_ns(rh) * rng.exponential(1.0, s_idx.size) / np.maximum(n_part, 1)
        + rng.normal(0, layout.time_jitter_ns, s_idx.size)
    )
    s_idx, d_idx, sig, t, noise_flag = _add_noise(s_idx, d_idx, signal, t, layout, rng, n)
    order = np.lexsort((d_idx, s_idx))
    if truth is not None:
        truth.update(X1=x1, SIZE=size, AGE=age, N_MU=n_mu, E_EM=e_em, LEADING_PI0=lead, SHOWER=shower,
                     LEAD_WEIGHT=shower.get("LEAD_WEIGHT", np.ones(n)))  # fmt: skip
    return Hits(s_idx[order], d_idx[order], sig[order], t[order], noise_flag[order], n)
