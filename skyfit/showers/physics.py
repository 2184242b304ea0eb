"""Parametrised air-shower physics: primaries, longitudinal size, lateral densities, muons, timing.

Every number comes from a textbook parametrisation, cited where it is used:

* [PDG] Particle Data Group, Review of Particle Physics: "Passage of particles through matter"
  (air: radiation length X0 = 36.62 g/cm2, critical energy Ec = 87.92 MeV, Molière radius
  r_M = X0 Es / Ec with Es = 21.2 MeV) and "Cosmic rays" (composition, all-particle spectrum).
* [Greisen56] K. Greisen, Prog. Cosmic Ray Physics III (1956) 1: electromagnetic shower size
  ``N(t) = 0.31 / sqrt(b0) exp(t (1 - 1.5 ln s))``, ``s = 3t / (t + 2 b0)``, ``b0 = ln(E/Ec)``.
* [NKG] Kamata & Nishimura, Prog. Theor. Phys. Suppl. 6 (1958) 93; Greisen, Ann. Rev. Nucl. Sci. 10
  (1960) 63: lateral density ``rho(r) = N C(s) / r_M^2 (r/r_M)^(s-2) (1 + r/r_M)^(s-4.5)``.
* [Matthews05] J. Matthews, Astropart. Phys. 22 (2005) 387 (Heitler-Matthews model): muon number
  ``N_mu = A (E / (A xi_pi))^beta`` with ``xi_pi = 20 GeV``, ``beta = 0.90``; EM energy
  ``E_em = E - N_mu xi_pi``; superposition of A nucleons of energy E/A.
* [Greisen60] the muon lateral density ``rho_mu ~ r^-0.75 (1 + r/320 m)^-2.5`` (Ann. Rev. 1960).
* [Linsley86] J. Linsley, J. Phys. G 12 (1986) 51: shower-front thickness growing with core distance
  (here ``sigma_t = 1.6 ns (1 + r/30 m)^1.5``, capped), and a curved front (delay growing as r^2).
* [Gaisser] T. Gaisser, Cosmic Rays and Particle Physics (1990): proton-air inelastic interaction
  length ~80 g/cm2 at TeV energies falling slowly with energy; nucleus-air lengths scale as
  A^(-1/3) to A^(-1/2) (here lambda_A = lambda_p A^-0.44, a Glauber-like fit).

Sub-cascades in hadronic showers: neutral pions produced with transverse momentum ~0.35 GeV/c in the
first interactions (height ~ 10-15 km) start electromagnetic sub-showers displaced from the axis by
``h pT / E_pi`` (tens to hundreds of metres); here their number is Poisson with mean
``SUBCASCADES_PER_TEV * (E_em/TeV)^0.4`` and their energies a power law, each a compact NKG bump.
This is the mechanism behind WCDA's/HAWC's compactness variable (isolated large signals far from the
core). A small fraction of proton showers is gamma-like (a leading neutral pion; Maier & Knapp 2007,
Astropart. Phys. 28, 72): they limit the rejection at high energy. The constants below are
approximate and marked as such.
"""

from __future__ import annotations

import numpy as np

X0 = 36.62  # g/cm2, radiation length of air [PDG]
EC_TEV = 87.92e-6  # critical energy of air [PDG]
ES_TEV = 21.2e-6  # scale energy [PDG]
XI_PI_TEV = 0.020  # pion critical energy [Matthews05]
BETA_MU = 0.90  # [Matthews05]
LAMBDA_P = 80.0  # g/cm2 at 1 TeV [Gaisser], slowly decreasing (approximate)
SITE_DEPTH = 600.0  # g/cm2, vertical depth of 4410 m a.s.l. (US standard atmosphere)
AIR_DENSITY_SITE = 7.9e-4  # g/cm3 at 4410 m (US standard atmosphere)
R_MOLIERE_M = X0 * ES_TEV / EC_TEV / AIR_DENSITY_SITE / 100.0  # about 112 m at the site [PDG]
MU_LDF_R0 = 320.0  # m, at sea level [Greisen60]
MU_PRODUCTION_AFTER_X1 = 100.0  # g/cm2: muons come from the first few generations (approximate)
SCALE_HEIGHT_KM = 8.4  # isothermal atmosphere
SITE_ALTITUDE_KM = 4.41  # LHAASO; SITE_DEPTH is this altitude's vertical depth
PT_GEV = 0.35  # mean transverse momentum of secondaries (approximate)
SUBCASCADES_PER_TEV = 2.0  # approximate; sets the rate of off-axis EM clumps in hadronic showers
# probability that a proton's first interaction gives a leading neutral pion carrying most of the
# energy (Feynman x > LEADING_PI0_X_MIN: a gamma-like shower): of order 1e-3 (Maier & Knapp 2007,
# Astropart. Phys. 28, 72 for IACTs); approximate, its systematic band is x0.3 to x3.
LEADING_PI0_PROBABILITY = 2e-3
# the leading pion's energy fraction x: dN/dx ~ (1 - x)^n above x_min, n = 3 from the quark counting rule
# for a meson carrying most of a proton's momentum (Gunion, Brodsky & Blankenbecler 1973, Phys. Rev. D 8,
# 287; the forward neutral-pion spectra of LHCf, Adriani et al. 2016, Phys. Rev. D 94, 032007, fall as
# steeply; plausible n 2-5). The rest of the energy, (1 - x) E, develops as a proton shower of that
# energy: its electromagnetic part, its sub-cascades and its muons.
LEADING_PI0_X_MIN = 0.5
LEADING_PI0_SPECTRUM_INDEX = 3.0
# the shower simulation's revision: changed with every change to its physics that alters the events it
# draws (sample caches and gamma/hadron model files record it and refuse another)
SIMULATION_REVISION = "2026-12-04 leading-pion energy spectrum"
PHOTONS_PER_ELECTRON = 1.0  # converting photons per charged particle seen in the water (approximate)

# the 26 species H..Fe as labels: (Z, A, symbol)
SPECIES = {
    -1: (-1, 0, "electron"),  # cosmic-ray electrons (and positrons): electromagnetic showers
    0: (0, 0, "gamma"),
    **{
        z: (z, a, s)
        for z, a, s in [
            (1, 1, "H"), (2, 4, "He"), (3, 7, "Li"), (4, 9, "Be"), (5, 11, "B"), (6, 12, "C"), (7, 14, "N"),
            (8, 16, "O"), (9, 19, "F"), (10, 20, "Ne"), (11, 23, "Na"), (12, 24, "Mg"), (13, 27, "Al"),
            (14, 28, "Si"), (15, 31, "P"), (16, 32, "S"), (17, 35, "Cl"), (18, 40, "Ar"), (19, 39, "K"),
            (20, 40, "Ca"), (21, 45, "Sc"), (22, 48, "Ti"), (23, 51, "V"), (24, 52, "Cr"), (25, 55, "Mn"),
            (26, 56, "Fe"),
        ]
    },
}  # fmt: skip
GROUPS = {"gamma": 0, "electron": -1, "proton": 1, "H": 1, "He": 2, "CNO": 7, "MgSi": 13, "Fe": 26}


def species_z(name) -> int:
    """Charge Z of a particle name (``gamma``, ``proton``, element symbol, group) or integer Z."""
    if isinstance(name, int | np.integer):
        if int(name) in SPECIES:
            return int(name)
    elif name in GROUPS:
        return GROUPS[name]
    else:
        for z, (_, _, sym) in SPECIES.items():
            if sym == name:
                return z
    raise ValueError(
        f"unknown particle {name!r}: use gamma, electron, proton, He, CNO, MgSi, Fe, an element symbol H..Fe "
        "or Z in -1..26"
    )


def mass_number(z) -> np.ndarray:
    """Mass number (0 for photons and electrons)."""
    table = np.array([SPECIES[i][1] for i in range(27)])
    return table[np.clip(np.asarray(z, dtype=int), 0, 26)]


def first_interaction_depth(rng, z, energy_tev):
    """Depth (g/cm2) of the first interaction: exponential with the interaction length."""
    z = np.asarray(z)
    a = np.maximum(mass_number(z), 1)
    lam_p = LAMBDA_P * (1.0 - 0.05 * np.log10(np.maximum(energy_tev, 1e-3)))  # slow decrease (approximate)
    # photons: pair-production length 9/7 X0; electrons radiate from the top: one X0 [PDG]
    lam = np.where(z == 0, 9.0 / 7.0 * X0, np.where(z < 0, X0, lam_p * a**-0.44))
    return rng.exponential(lam)


def em_energy_fraction(z, energy_tev):
    """Fraction of the primary energy in the electromagnetic cascade [Matthews05]; 1 for photons."""
    a = np.maximum(mass_number(z), 1)
    per_nucleon = np.maximum(energy_tev / a, XI_PI_TEV * 1.0001)
    n_mu = a * (per_nucleon / XI_PI_TEV) ** BETA_MU
    frac = 1.0 - n_mu * XI_PI_TEV / energy_tev
    return np.where(np.asarray(z) <= 0, 1.0, np.clip(frac, 0.05, 1.0))


def muon_threshold_fraction(threshold_gev):
    """Fraction of the Heitler-Matthews muons above a detector's energy threshold: 0.25 above 1 GeV
    (approximate), scaled with Greisen's integral muon spectrum ``N(>E) ~ (E + 2 GeV)^-1.4``
    [Greisen60]: 0.39 for a water Cherenkov cell (~0.2 GeV), 0.25 for a muon counter under 2.5 m of
    soil (~1 GeV)."""
    return 0.25 * (3.0 / (threshold_gev + 2.0)) ** 1.4


def muon_number(z, energy_tev, fraction=0.25):
    """Muons reaching the ground above a detector's threshold [Matthews05]: ``fraction`` of the
    Heitler-Matthews number (see :func:`muon_threshold_fraction`). Photons: about 1/30 of a proton's."""
    a = np.maximum(mass_number(z), 1)
    n = a * (np.maximum(energy_tev / a, XI_PI_TEV) / XI_PI_TEV) ** BETA_MU
    # photo-produced muons: about 1/30 of a proton shower's at equal energy (approximate)
    return np.where(np.asarray(z) <= 0, n / 30.0, n) * fraction


def electron_size(energy_em_tev, depth_from_first, z):
    """Charged-particle size and age at slant depth ``depth_from_first`` past the first interaction
    [Greisen56]; hadron showers as superpositions of A nucleons (each of E/A) [Matthews05]."""
    a = np.maximum(mass_number(z), 1)
    e_sub = np.maximum(energy_em_tev / a, EC_TEV * 3)
    b0 = np.log(e_sub / EC_TEV)
    t = np.maximum(depth_from_first / X0, 0.1)
    s = 3 * t / (t + 2 * b0)
    n = 0.31 / np.sqrt(b0) * np.exp(t * (1.0 - 1.5 * np.log(s)))
    return a * n, s


def nkg_density(r_m, size, age):
    """NKG lateral density (particles per m^2) [NKG], age clipped to its valid range.

    ``size`` and ``age`` broadcast against ``r_m``; the normalisation is computed on their shape only.
    """
    from scipy.special import gammaln

    s = np.clip(age, 0.5, 1.9)
    c = np.exp(gammaln(4.5 - s) - gammaln(s) - gammaln(4.5 - 2 * s)) / (2 * np.pi)
    x = np.maximum(r_m, 0.5) / R_MOLIERE_M
    return (size * c / R_MOLIERE_M**2) * np.exp((s - 2.0) * np.log(x) + (s - 4.5) * np.log1p(x))


def altitude_km(vertical_depth_gcm2):
    """Altitude (km a.s.l.) of a vertical depth in an isothermal atmosphere of scale height 8.4 km
    (``X = 1030 exp(-h / 8.4 km)`` g/cm2, close to the US standard atmosphere below 20 km)."""
    return SCALE_HEIGHT_KM * np.log(1030.0 / np.maximum(vertical_depth_gcm2, 1.0))


def muon_ldf_r0(first_interaction_gcm2, cos_zenith):
    """Greisen's ``r0`` at the site: muons spread laterally in proportion to their path from the
    production height (first interaction plus ~100 g/cm2, approximate) to the observation level, so
    the sea-level 320 m [Greisen60] shrinks by ``(h_prod - h_site) / h_prod``: showers that start deep
    put their muons close to the core."""
    h_prod = altitude_km((np.asarray(first_interaction_gcm2) + MU_PRODUCTION_AFTER_X1) * cos_zenith)
    return MU_LDF_R0 * np.clip((h_prod - SITE_ALTITUDE_KM) / np.maximum(h_prod, 1e-3), 0.05, 1.0)


def muon_density(r_m, n_mu, r0=MU_LDF_R0):
    """Muon lateral density (per m^2) normalised to ``n_mu`` within 2 km [Greisen60]; ``r0`` (m)
    broadcasts like ``n_mu``."""
    r = np.maximum(r_m, 1.0)
    r0 = np.asarray(r0, dtype=np.float32) if np.ndim(r0) else r0
    norm = np.interp(r0, _R0_GRID, _MU_NORMS).astype(np.float32) if np.ndim(r0) else np.interp(r0, _R0_GRID, _MU_NORMS)
    return n_mu * r**-0.75 * (1 + r / r0) ** -2.5 / norm


def _mu_norms(r0_grid):
    """Normalisation of ``2 pi r r^-0.75 (1 + r/r0)^-2.5`` over 1 m - 2 km, on a grid of ``r0``."""
    r = np.geomspace(1.0, 2000.0, 4000)
    f = 2 * np.pi * r * r**-0.75 * (1 + r[None, :] / r0_grid[:, None]) ** -2.5
    return np.trapezoid(f, r, axis=1)


_R0_GRID = np.geomspace(10.0, MU_LDF_R0, 200)
_MU_NORMS = _mu_norms(_R0_GRID)


def front_delay_ns(r_m):
    """Mean arrival delay behind the plane (curvature) [Linsley86]; approximate 7 ns at 100 m."""
    return 7e-4 * r_m**2 / (1.0 + r_m / 300.0)


def front_thickness_ns(r_m):
    """Spread of particle arrival times at core distance r [Linsley86], approximate."""
    return np.minimum(1.6 * (1.0 + r_m / 30.0) ** 1.5, 60.0)
