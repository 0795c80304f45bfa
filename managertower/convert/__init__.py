"""Converters onto :class:`managertower.ManagerTowerModel`: transformers' BridgeTower (the numerical reference; its
MLM and ITM task models onto our pre-training model) and the raw pre-trained experts (RoBERTa; CLIP in OpenAI's or
transformers' layout)."""

from managertower.convert.encoders import load_clip, load_roberta, resize_positions
from managertower.convert.hf_bridgetower import config_from_hf_bridgetower, from_hf_bridgetower, hf_key_map
from managertower.convert.hf_bridgetower_tasks import task_from_hf_bridgetower

__all__ = ["config_from_hf_bridgetower", "from_hf_bridgetower", "hf_key_map", "load_clip", "load_roberta",
           "resize_positions", "task_from_hf_bridgetower"]  # fmt: skip
