"""Converters onto :class:`managertower.ManagerTowerModel`: transformers' BridgeTower (the numerical reference)."""

from managertower.convert.hf_bridgetower import config_from_hf_bridgetower, from_hf_bridgetower, hf_key_map

__all__ = ["config_from_hf_bridgetower", "from_hf_bridgetower", "hf_key_map"]
