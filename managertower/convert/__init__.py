"""Converters onto :class:`managertower.ManagerTowerModel`: transformers' BridgeTower (the numerical reference) and the
raw pre-trained experts (RoBERTa; CLIP in OpenAI's or transformers' layout)."""

from managertower.convert.encoders import load_clip, load_roberta, resize_positions
from managertower.convert.hf_bridgetower import config_from_hf_bridgetower, from_hf_bridgetower, hf_key_map

__all__ = ["config_from_hf_bridgetower", "from_hf_bridgetower", "hf_key_map", "load_clip", "load_roberta",
           "resize_positions"]  # fmt: skip
