"""Detector layouts and responses: a WCDA-like pond and a KM2A-like array (approximate, cited).

* WCDA (LHAASO Collaboration, Chinese Phys. C 45 (2021) 085002; arXiv:2101.03508): three ponds,
  78,000 m^2 in all, 3,120 cells of 5 m x 5 m, 4 m of water above each 8-inch PMT. Here one
  rectangle of 60 x 52 = 3,120 cells. Signals: electromagnetic particles (electrons and converted
  photons) give a few photoelectrons each, a muon crossing the water column about 150 (approximate);
  PMT timing jitter 2 ns; dark-noise rate 15 kHz per cell (configurable). Water Cherenkov light
  makes muons visible down to ~0.2 GeV (the Cherenkov threshold in water is 0.16 GeV).
* KM2A (Chinese Phys. C 45 (2021) 025002; arXiv:2010.06205): 5,216 electromagnetic detectors (1 m^2
  scintillator, 15 m spacing) and 1,188 muon detectors (36 m^2 under 2.5 m of soil, 30 m spacing) over
  1.3 km^2. Here triangular grids of those spacings inside a 575 m disc (about 5,300 EDs and 1,300
  MDs); ED timing jitter 2 ns; EDs see every muon, MDs count muons above ~1 GeV only.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

__all__ = ["Layout", "wcda_layout", "km2a_layouts", "LayoutError"]


class LayoutError(ValueError):
    """A detector layout is malformed."""


@dataclass(frozen=True)
class Layout:
    """Detector positions (m, x east, y north, on the ground) and their properties."""

    name: str
    x: np.ndarray
    y: np.ndarray
    area_m2: float
    pe_per_em: float  # mean signal per electromagnetic particle (PE or particles)
    pe_per_muon: float
    em_sensitive: bool = True
    time_jitter_ns: float = 2.0
    noise_rate_hz: float = 0.0
    threshold: float = 1.0  # minimum signal for a hit
    photoelectrons: bool = False  # signal: Poisson photoelectrons per particle (PMT); else particle counts
    photon_conversion: float = 0.0  # fraction of the shower photons that convert and are seen
    muon_threshold_gev: float = 1.0  # energy threshold for muons (sets the fraction of muons seen)

    def __post_init__(self):
        x, y = np.asarray(self.x, float), np.asarray(self.y, float)
        if x.ndim != 1 or x.shape != y.shape or x.size == 0:
            raise LayoutError(
                f"layout {self.name!r}: x and y must be equal-length 1-D arrays, got {x.shape}, {y.shape}"
            )
        if not (np.all(np.isfinite(x)) and np.all(np.isfinite(y))):
            raise LayoutError(f"layout {self.name!r}: detector positions must be finite")
        if not self.area_m2 > 0:
            raise LayoutError(f"layout {self.name!r}: detector area must be positive, got {self.area_m2}")
        pos = np.round(np.stack([x, y], 1), 3)
        if np.unique(pos, axis=0).shape[0] != x.size:
            raise LayoutError(f"layout {self.name!r}: two detectors share a position")
        if not self.muon_threshold_gev >= 0:
            raise LayoutError(f"layout {self.name!r}: muon threshold must be >= 0 GeV, got {self.muon_threshold_gev}")
        object.__setattr__(self, "x", x)
        object.__setattr__(self, "y", y)

    @property
    def n(self) -> int:
        return self.x.size

    def extent(self) -> tuple[float, float, float, float]:
        return float(self.x.min()), float(self.x.max()), float(self.y.min()), float(self.y.max())


def wcda_layout(nx: int = 60, ny: int = 52, cell_m: float = 5.0, noise_rate_hz: float = 15e3) -> Layout:
    xs = (np.arange(nx) - (nx - 1) / 2) * cell_m
    ys = (np.arange(ny) - (ny - 1) / 2) * cell_m
    x, y = np.meshgrid(xs, ys, indexing="ij")
    return Layout("WCDA", x.ravel(), y.ravel(), cell_m**2, pe_per_em=2.5, pe_per_muon=150.0,
                  noise_rate_hz=noise_rate_hz, threshold=1.0, photoelectrons=True,
                  photon_conversion=0.8, muon_threshold_gev=0.2)  # fmt: skip


def _triangular(spacing, radius):
    n = int(radius / spacing) + 2
    i, j = np.meshgrid(np.arange(-n, n + 1), np.arange(-n, n + 1), indexing="ij")
    x = spacing * (i + 0.5 * (j % 2))
    y = spacing * np.sqrt(3) / 2 * j
    keep = x**2 + y**2 <= radius**2
    return x[keep].astype(float), y[keep].astype(float)


def km2a_layouts(radius_m: float = 575.0, noise_rate_hz: float = 1.5e3) -> tuple[Layout, Layout]:
    ex, ey = _triangular(15.0, radius_m)
    mx, my = _triangular(30.0, radius_m)
    ed = Layout(
        "KM2A-ED",
        ex,
        ey,
        1.0,
        pe_per_em=1.0,
        pe_per_muon=1.0,
        noise_rate_hz=noise_rate_hz,
        threshold=1.0,
        muon_threshold_gev=0.01,
    )
    md = Layout("KM2A-MD", mx + 7.5, my, 36.0, pe_per_em=0.0, pe_per_muon=1.0, em_sensitive=False,
                noise_rate_hz=0.0, threshold=1.0)  # fmt: skip
    return ed, md
