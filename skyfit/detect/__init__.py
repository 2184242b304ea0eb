"""Source detection: TS maps and peak finding (classic); the neural-network prior comes later."""

from .tsmap import DEFAULT_INDEX, TSMap, ts_map

__all__ = ["TSMap", "ts_map", "DEFAULT_INDEX"]
