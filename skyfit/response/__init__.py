"""Instrument responses: containers, the HAWC DL3 reader and a parametric LHAASO-like instrument."""

from ._types import GaussianMixturePSF, Response, TabulatedPSF, log_simpson_bin_weights, log_simpson_nodes

__all__ = ["GaussianMixturePSF", "TabulatedPSF", "Response", "log_simpson_nodes", "log_simpson_bin_weights"]
