"""The catalogue pipeline: simulated Galactic-plane skies, multi-source fits, and `skyfit catalog`."""

from ..skies import (
    CatalogError,
    Region,
    catalog_sky,
    galactic_diffuse,
    read_1lhaaso,
    read_3hwc,
    simulate_plane,
)
from ._output import owned_components
from ._pipeline import BUILTIN_REGION, CatalogConfig, catalog_table, cross_match, merge_components, run, tiles
from ._roi import DetectionConfig, RoiResult, component_table, detect_and_fit, radius95

__all__ = [
    "BUILTIN_REGION",
    "CatalogConfig",
    "CatalogError",
    "DetectionConfig",
    "Region",
    "RoiResult",
    "catalog_sky",
    "catalog_table",
    "component_table",
    "cross_match",
    "detect_and_fit",
    "galactic_diffuse",
    "merge_components",
    "owned_components",
    "radius95",
    "read_1lhaaso",
    "read_3hwc",
    "run",
    "simulate_plane",
    "tiles",
]
