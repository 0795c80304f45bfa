"""Weight converters onto :class:`managertower.ManagerTowerModel`: transformers' BridgeTower (the numerical reference;
its MLM and ITM task models onto our pre-training model), the raw pre-trained experts (RoBERTa; CLIP in OpenAI's or
transformers' layout) and the original Lightning checkpoints (``managertower.convert.original``). Each source
format is one adapter of ``vlcommon.state_dict``'s protocol (``to_ours``, and ``config_to_ours`` where the format
carries a config); the functions below build or fill a model through them. The Arrow tables are built by
``managertower.data.build``, not here."""

from managertower.convert.encoders import (
    HFClipAdapter,
    OpenAIClipAdapter,
    RobertaAdapter,
    load_clip,
    load_roberta,
    resize_positions,
)
from managertower.convert.hf_bridgetower import (
    HFBridgeTowerAdapter,
    config_from_hf_bridgetower,
    from_hf_bridgetower,
    hf_key_map,
)
from managertower.convert.hf_bridgetower_tasks import HFBridgeTowerTaskAdapter, task_from_hf_bridgetower

__all__ = ["HFBridgeTowerAdapter", "HFBridgeTowerTaskAdapter", "HFClipAdapter", "OpenAIClipAdapter",
           "RobertaAdapter", "config_from_hf_bridgetower", "from_hf_bridgetower", "hf_key_map", "load_clip",
           "load_roberta", "resize_positions", "task_from_hf_bridgetower"]  # fmt: skip
