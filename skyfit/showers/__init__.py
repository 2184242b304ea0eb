"""Air-shower and detector simulation with classic reconstruction: labelled events for LHAASO-like arrays."""

from .detectors import Layout, LayoutError, km2a_layouts, wcda_layout
from .simulate import Hits, sample_primaries, simulate_hits

__all__ = ["Layout", "LayoutError", "wcda_layout", "km2a_layouts", "Hits", "sample_primaries", "simulate_hits"]
