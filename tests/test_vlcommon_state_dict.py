"""Every weight converter of both systems is an adapter of ``vlcommon.state_dict``'s protocol: ``to_ours`` always,
``from_ours`` exactly where the format can be written (and then ``to_ours(from_ours(ours)) == ours``), and
``config_to_ours`` where the format carries a config. What each adapter computes is checked against transformers by
the converters' own tests (parity, loaders, round trips through the CLI)."""

from __future__ import annotations

import pytest
import torch
from transformers import BridgeTowerConfig, BridgeTowerForImageAndTextRetrieval, BridgeTowerModel

from llava.model.convert import LlavaOnevisionAdapter, split_managers
from llava.testing import tiny_model
from managertower import ManagerTowerModel
from managertower.convert import (
    HFBridgeTowerAdapter,
    HFBridgeTowerTaskAdapter,
    HFClipAdapter,
    OpenAIClipAdapter,
    RobertaAdapter,
)
from managertower.convert.original import OriginalAdapter, original_config
from managertower.tasks import TwoTowerForTask
from managertower.testing import tiny_config
from vlcommon.state_dict import ConfigAdapter, ReversibleStateDictAdapter, StateDictAdapter

ORIGINAL = ManagerTowerModel(original_config(tiny_config(), image_size=32))
# (adapter, can be written, carries a config)
ADAPTERS = {
    "llava-onevision": (LlavaOnevisionAdapter(), True, True),
    "bridgetower": (HFBridgeTowerAdapter(), False, True),
    "bridgetower-task": (HFBridgeTowerTaskAdapter("itm"), False, True),
    "roberta": (RobertaAdapter(), False, False),
    "clip-openai": (OpenAIClipAdapter(), False, False),
    "clip-transformers": (HFClipAdapter(), False, False),
    "original": (OriginalAdapter(ORIGINAL), False, False),
}


@pytest.mark.parametrize("name", ADAPTERS)
def test_every_converter_is_an_adapter_of_the_protocol(name):
    adapter, writable, configured = ADAPTERS[name]
    assert isinstance(adapter, StateDictAdapter)
    assert isinstance(adapter, ReversibleStateDictAdapter) is writable
    assert isinstance(adapter, ConfigAdapter) is configured


def _same(a: dict[str, torch.Tensor], b: dict[str, torch.Tensor]) -> bool:
    return a.keys() == b.keys() and all(torch.equal(a[k], b[k]) for k in a)


def test_llava_onevision_round_trips_and_refuses_managers():
    model = tiny_model(vocab_size=1024, image_size=56)
    ours, _ = split_managers(model.state_dict())
    adapter = LlavaOnevisionAdapter()
    theirs = adapter.from_ours(ours)
    assert any(k.startswith("model.language_model.") for k in theirs) and _same(adapter.to_ours(theirs), ours)
    # With the config, to_ours also fits the tensors to the model config_to_ours builds: here nothing to cut.
    fitted = LlavaOnevisionAdapter(
        adapter.config_from_ours(model.config, image_token_index=1000, video_token_index=1001)
    )
    assert _same(fitted.to_ours(theirs), ours)
    with pytest.raises(ValueError, match="split the managers off first"):
        adapter.from_ours({"model.managers.0.weight": torch.zeros(1)})


def _bridgetower_config() -> BridgeTowerConfig:
    return BridgeTowerConfig(
        hidden_size=32, num_attention_heads=2, num_hidden_layers=2,
        text_config={"vocab_size": 99, "hidden_size": 32, "num_hidden_layers": 2, "num_attention_heads": 2,
                     "intermediate_size": 37, "max_position_embeddings": 40},
        vision_config={"hidden_size": 64, "num_hidden_layers": 2, "patch_size": 8, "image_size": 32},
    )  # fmt: skip


def test_bridgetower_adapters_give_every_tensor_of_the_model_their_config_builds():
    config = _bridgetower_config()
    adapter = HFBridgeTowerAdapter()
    ours = ManagerTowerModel(adapter.config_to_ours(config))
    assert adapter.to_ours(BridgeTowerModel(config).state_dict()).keys() == ours.state_dict().keys()
    task = HFBridgeTowerTaskAdapter("itm")
    state = task.to_ours(BridgeTowerForImageAndTextRetrieval(config).state_dict())
    wanted = TwoTowerForTask(ManagerTowerModel(task.config_to_ours(config)), "pretrain").state_dict()
    assert state.keys() == {k for k in wanted if not k.startswith("heads.mlm.")}


def test_partial_adapters_name_what_they_leave_out():
    tensor = torch.zeros(1)
    state, unused = RobertaAdapter().split({"roberta.embeddings.x": tensor, "lm_head.bias": tensor})
    assert state == {"embeddings.x": tensor} and unused == ["lm_head.bias"]
    assert RobertaAdapter().to_ours({"roberta.encoder.y": tensor}) == {"encoder.y": tensor}
    state, unused = OpenAIClipAdapter().split({"visual.conv1.weight": tensor, "visual.proj": tensor})
    assert state == {"embeddings.patch_embedding.weight": tensor} and unused == ["visual.proj"]
