"""transformers' BridgeTower task models onto our pre-training model (``task_from_hf_bridgetower``): MLM and ITM
logits and losses equal transformers' own forward, the MLM LayerNorm epsilon follows the config (and a config
saved without it keeps the original's 1e-12), and what our heads cannot represent is refused by name."""

from __future__ import annotations

import pytest
import torch
from transformers import (
    BridgeTowerConfig,
    BridgeTowerForContrastiveLearning,
    BridgeTowerForImageAndTextRetrieval,
    BridgeTowerForMaskedLM,
    BridgeTowerModel,
)

from managertower import ManagerTowerConfig, ManagerTowerModel
from managertower.convert import from_hf_bridgetower, task_from_hf_bridgetower
from managertower.data.arrow import Task
from managertower.tasks import TwoTowerForTask
from managertower.testing import tiny_config

MASK_ID = 4  # the tiny tokenizer's <mask>; any id works for the comparison


def _config(*, eps: float, text_eps: float, link: str = "scaled_add", layers: int = 2, **extra) -> BridgeTowerConfig:
    """Tiny random BridgeTower; ``eps`` is the top-level layer_norm_eps (link towers, layer-1 norms and the MLM
    head's transform), ``text_eps`` the text encoder's and co-attention layers'."""
    return BridgeTowerConfig(
        hidden_size=32, num_attention_heads=2, num_hidden_layers=layers, link_tower_type=link, layer_norm_eps=eps,
        text_config={"vocab_size": 99, "hidden_size": 32, "num_hidden_layers": 3, "num_attention_heads": 2,
                     "intermediate_size": 37, "max_position_embeddings": 40, "layer_norm_eps": text_eps},
        vision_config={"hidden_size": 64, "num_hidden_layers": 3, "patch_size": 8, "image_size": 32},
        **extra,
    )  # fmt: skip


def _hf(cls, config: BridgeTowerConfig, seed: int):
    """``cls`` in eval mode, every parameter moved off its initial value (LayerNorms (1, 0), zero biases, link
    factors), so that a tensor mapped to the wrong place or left at its default shows."""
    torch.manual_seed(seed)
    model = cls(config).eval()
    with torch.no_grad():
        for parameter in model.parameters():
            parameter.add_(torch.randn_like(parameter) * 0.05)
    return model


def _pair(config: BridgeTowerConfig, seed: int):
    """One "checkpoint" loaded into both head classes: the same backbone, each class its own head."""
    mlm = _hf(BridgeTowerForMaskedLM, config, seed)
    itm = _hf(BridgeTowerForImageAndTextRetrieval, config, seed + 100)
    itm.bridgetower.load_state_dict(mlm.bridgetower.state_dict())
    return mlm, itm


def _batch(seed: int, real: tuple[int, ...], length: int = 9) -> dict[str, torch.Tensor]:
    """A pre-training batch: random ids padded (RoBERTa's pad 1) after each ``real`` length, about a third of the
    real tokens after ``<s>`` masked, a true and a false image per sample."""
    generator = torch.Generator().manual_seed(seed)
    batch = len(real)
    ids = torch.randint(5, 99, (batch, length), generator=generator)
    ids[:, 0] = 0
    mask = torch.ones(batch, length, dtype=torch.long)
    for row, n in enumerate(real):
        ids[row, n:], mask[row, n:] = 1, 0
    chosen = (torch.rand(batch, length, generator=generator) < 0.35) & mask.bool()
    chosen[:, 0] = False
    chosen[0, 1] = True  # at least one masked token
    return {
        "input_ids": ids,
        "attention_mask": mask,
        "pixel_values": torch.randn(batch, 3, 32, 32, generator=generator),
        "false_pixel_values": torch.randn(batch, 3, 32, 32, generator=generator),
        "mlm_input_ids": torch.where(chosen, MASK_ID, ids),
        "mlm_labels": torch.where(chosen, ids, -100),
    }


def _close(got: torch.Tensor, expected: torch.Tensor) -> None:
    """Logits: the same modules in the same order, so equal to fp32 rounding (measured: bitwise)."""
    torch.testing.assert_close(got, expected, rtol=0, atol=1e-6)


def _close_loss(got: torch.Tensor, expected: torch.Tensor) -> None:
    """Means of cross-entropies (MLM near 4.6, ITM near 0.7): a few ulps, relative (measured: bitwise)."""
    torch.testing.assert_close(got, expected, rtol=1e-6, atol=0)


CASES = [  # (seed, top-level eps, text eps, link, cross layers, real lengths)
    (0, 1e-3, 1e-7, "scaled_add", 2, (9, 4, 6)),
    (1, 1e-5, 1e-12, "interpolate", 3, (5, 9)),  # transformers' default top-level eps: the issue's 5.8e-5 case
    (2, 3e-4, 1e-5, "add", 2, (9, 9)),  # no padding
]


@pytest.mark.parametrize(("seed", "eps", "text_eps", "link", "layers", "real"), CASES)
def test_pretrain_model_from_mlm_and_itm_equals_transformers(seed, eps, text_eps, link, layers, real):
    mlm, itm = _pair(_config(eps=eps, text_eps=text_eps, link=link, layers=layers), seed)
    ours = task_from_hf_bridgetower(mlm, itm).eval()
    assert ours.task is Task.PRETRAIN and ours.backbone.config.mlm_norm_eps == eps
    assert ours.heads["mlm"].LayerNorm.eps == eps
    b = _batch(seed, real)
    with torch.no_grad():
        out = ours.backbone(b["input_ids"], b["attention_mask"], b["pixel_values"])
        hf_mlm = mlm(input_ids=b["input_ids"], attention_mask=b["attention_mask"], pixel_values=b["pixel_values"])
        hf_itm = itm(input_ids=b["input_ids"], attention_mask=b["attention_mask"], pixel_values=b["pixel_values"])
        _close(ours.heads["mlm"](out.text_features), hf_mlm.logits)
        _close(ours.heads["itm"](out.cls_feats), hf_itm.logits)

        # The task's own forward (what the train entry optimises): MLM on the masked text, ITM on the images it drew.
        torch.manual_seed(seed)
        task = ours(**b)
        expected_mlm = mlm(input_ids=b["mlm_input_ids"], attention_mask=b["attention_mask"],
                           pixel_values=b["pixel_values"], labels=b["mlm_labels"])  # fmt: skip
        true_image = task["itm_labels"].bool()
        assert 0 < int(true_image.sum()) < len(real)  # both kinds of pair are compared
        images = torch.where(true_image[:, None, None, None], b["pixel_values"], b["false_pixel_values"])
        expected_itm = itm(input_ids=b["input_ids"], attention_mask=b["attention_mask"], pixel_values=images,
                           labels=task["itm_labels"])  # fmt: skip
    _close_loss(task["mlm_loss"], expected_mlm.loss)
    _close(task["itm_logits"], expected_itm.logits)
    _close_loss(task["itm_loss"], expected_itm.loss)


def test_one_head_class_converts_with_a_new_other_head_only_when_asked():
    config = _config(eps=1e-3, text_eps=1e-7)
    mlm = _hf(BridgeTowerForMaskedLM, config, 3)
    with pytest.raises(ValueError, match=r"BridgeTowerForImageAndTextRetrieval \(the itm head\).*new_heads=True"):
        task_from_hf_bridgetower(mlm)
    itm = _hf(BridgeTowerForImageAndTextRetrieval, config, 4)
    b = _batch(3, (9, 5))
    args = (b["input_ids"], b["attention_mask"], b["pixel_values"])
    for hf_model, head in ((mlm, "mlm"), (itm, "itm")):
        ours = task_from_hf_bridgetower(hf_model, new_heads=True).eval()
        with torch.no_grad():
            out = ours.backbone(*args)
            got = ours.heads[head](out.text_features if head == "mlm" else out.cls_feats)
            _close(got, hf_model(input_ids=args[0], attention_mask=args[1], pixel_values=args[2]).logits)


def _contrastive():
    config = _config(eps=1e-5, text_eps=1e-5, contrastive_hidden_size=16, logit_scale_init_value=2.6592)
    return BridgeTowerForContrastiveLearning(config)


def _tied():
    return BridgeTowerForMaskedLM(_config(eps=1e-5, text_eps=1e-5, tie_word_embeddings=True))


def _other_act():
    return BridgeTowerForMaskedLM(_config(eps=1e-5, text_eps=1e-5, hidden_act="gelu_new"))


def _other_backbone():
    config = _config(eps=1e-5, text_eps=1e-5)
    return _hf(BridgeTowerForMaskedLM, config, 5), _hf(BridgeTowerForImageAndTextRetrieval, config, 6)


def _other_config():
    mlm = _hf(BridgeTowerForMaskedLM, _config(eps=1e-5, text_eps=1e-5), 5)
    return mlm, _hf(BridgeTowerForImageAndTextRetrieval, _config(eps=1e-4, text_eps=1e-5), 5)


REFUSED = [  # (models to convert, what the error must name)
    (lambda: (_contrastive(),), r"BridgeTowerForContrastiveLearning .*itc_cross_modal_head.*itc_image_head"),
    (lambda: (_tied(),), r"tie_word_embeddings=True"),
    (lambda: (_other_act(),), r"hidden_act='gelu_new'"),
    (lambda: (BridgeTowerModel(_config(eps=1e-5, text_eps=1e-5)),), r"bare BridgeTowerModel .*from_hf_bridgetower"),
    (_other_backbone, r"backbones differ in \d+ tensors"),
    (_other_config, r"configs differ in \['cross.input_norm_eps', 'mlm_norm_eps'\]"),
    (lambda: (_hf(BridgeTowerForMaskedLM, _config(eps=1e-5, text_eps=1e-5), 7),) * 2, r"two BridgeTowerForMaskedLM"),
]


@pytest.mark.parametrize(("models", "message"), REFUSED, ids=lambda v: v if isinstance(v, str) else "")
def test_what_our_heads_cannot_represent_is_refused_by_name(models, message):
    with pytest.raises(ValueError, match=message):
        task_from_hf_bridgetower(*models(), new_heads=True)


def test_backbone_converter_refuses_task_models_instead_of_dropping_their_heads():
    mlm = BridgeTowerForMaskedLM(_config(eps=1e-5, text_eps=1e-5))
    with pytest.raises(ValueError, match=r"BridgeTowerForMaskedLM is a BridgeTower task model: task_from_hf_bridge"):
        from_hf_bridgetower(mlm)
    assert from_hf_bridgetower(mlm.bridgetower).config.mlm_norm_eps == 1e-5


def test_mlm_epsilon_is_a_config_value_kept_by_old_and_converted_checkpoints(tmp_path):
    # Our own recipes keep the original's BERT epsilon, and so does a config saved before the field existed.
    assert ManagerTowerConfig().mlm_norm_eps == 1e-12
    old = tiny_config().to_dict()
    del old["mlm_norm_eps"]
    backbone = ManagerTowerModel(ManagerTowerConfig.from_dict(old))
    assert TwoTowerForTask(backbone, Task.PRETRAIN).heads["mlm"].LayerNorm.eps == 1e-12
    with pytest.raises(ValueError, match="mlm_norm_eps=0"):
        tiny_config(mlm_norm_eps=0)
    # A converted model saved and rebuilt keeps transformers' epsilon, so its MLM logits are unchanged.
    mlm, itm = _pair(_config(eps=1e-3, text_eps=1e-7), 8)
    ours = task_from_hf_bridgetower(mlm, itm).eval()
    ours.backbone.save_pretrained(tmp_path)
    rebuilt = TwoTowerForTask(ManagerTowerModel.from_pretrained(tmp_path), Task.PRETRAIN).eval()
    rebuilt.load_state_dict(ours.state_dict())
    assert rebuilt.heads["mlm"].LayerNorm.eps == 1e-3
    b = _batch(8, (9, 3))
    with torch.no_grad():
        features = ours.backbone(b["input_ids"], b["attention_mask"], b["pixel_values"]).text_features
        assert torch.equal(rebuilt.heads["mlm"](features), ours.heads["mlm"](features))
