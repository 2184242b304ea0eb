"""Air-shower and detector simulation with classic reconstruction: labelled events for LHAASO-like arrays.

- :func:`sample_primaries` / :func:`simulate_hits`: primaries and their hits on a :class:`Layout`;
- :func:`simulate_shower_events`: primaries -> hits -> reconstruction, an event table per instrument
  (:func:`hits_table`: its hit records), :func:`reconstruct_table`: the reconstruction again from stored
  hits, :func:`derive_response`: an instrument response from simulated events; :func:`fit_showers`: the
  strong classic reconstruction (a likelihood fit of the lateral distribution and the front per shower);
- :func:`traditional_cut`, :func:`cut_table`, :func:`plot_cut_roc`: the single-variable gamma/hadron cut
  per analysis bin, set by :func:`threshold_at_efficiency` (which :mod:`skyfit.ghsep` uses too).
"""

from .cuts import cut_table, plot_cut_roc, quality_cut, threshold_at_efficiency, thresholds_per_bin, traditional_cut
from .detectors import Layout, LayoutError, km2a_layouts, wcda_layout
from .ldf_fit import fit_showers
from .pipeline import (
    KM2A_LOG10NE_EDGES,
    WCDA_NHIT_EDGES,
    angular_error_deg,
    derive_response,
    hits_table,
    reconstruct_table,
    simulate_shower_events,
)
from .simulate import Hits, sample_primaries, simulate_hits

__all__ = [
    "Layout", "LayoutError", "wcda_layout", "km2a_layouts", "Hits", "sample_primaries", "simulate_hits",
    "simulate_shower_events", "hits_table", "reconstruct_table", "derive_response", "angular_error_deg",
    "WCDA_NHIT_EDGES", "KM2A_LOG10NE_EDGES", "traditional_cut", "threshold_at_efficiency", "thresholds_per_bin",
    "quality_cut", "cut_table", "plot_cut_roc", "fit_showers",
]  # fmt: skip
