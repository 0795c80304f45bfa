"""Tiny random configs shared by the tests (and usable for quick experiments): seconds on a CPU."""

from __future__ import annotations

from dataclasses import replace

from managertower.config import (
    CrossModalConfig,
    ManagerTowerConfig,
    TextEncoderConfig,
    TwoTowerManagerConfig,
    VisionEncoderConfig,
)


def tiny_config(
    *, depth: int = 4, cross_layers: int = 3, experts: int = 3, hidden: int = 32, **changes
) -> ManagerTowerConfig:
    """A ``depth``-layer RoBERTa and CLIP (vision width 64: CLIP's head width), ``cross_layers`` co-attention layers
    of width ``hidden``; ``changes`` replace top-level fields (``manager=`` may be a dict of manager fields)."""
    manager = changes.pop("manager", {})
    if isinstance(manager, dict):
        manager = TwoTowerManagerConfig(**{"experts": experts, **manager})
    base = ManagerTowerConfig(
        text=TextEncoderConfig(
            vocab_size=99,
            hidden_size=hidden,
            layers=depth,
            heads=2,
            intermediate_size=37,
            max_positions=40,
            dropout=0.0,
        ),
        vision=VisionEncoderConfig(hidden_size=64, layers=depth, patch_size=8, image_size=32),
        cross=CrossModalConfig(layers=cross_layers, hidden_size=hidden, heads=2, intermediate_size=37, dropout=0.0),
        manager=manager,
    )
    return replace(base, **changes)


def tiny_tokenizer(words=None):
    """A word-level tokenizer with RoBERTa's special tokens (``<s>`` 0, ``<pad>`` 1, ``</s>`` 2, ``<unk>`` 3,
    ``<mask>`` 4) over ``words`` (the generated data's vocabulary by default): ids stay below tiny_config's
    vocabulary of 99, and ``<s> ... </s>`` wraps every text as RoBERTa's does."""
    from tokenizers import Tokenizer, models, pre_tokenizers, processors
    from transformers import PreTrainedTokenizerFast

    from managertower.data.synthetic import VOCABULARY

    specials = ["<s>", "<pad>", "</s>", "<unk>", "<mask>"]
    vocab = {token: i for i, token in enumerate([*specials, *dict.fromkeys(words or VOCABULARY)])}
    backend = Tokenizer(models.WordLevel(vocab, unk_token="<unk>"))
    backend.pre_tokenizer = pre_tokenizers.WhitespaceSplit()
    backend.post_processor = processors.TemplateProcessing(
        single="<s> $A </s>", special_tokens=[("<s>", 0), ("</s>", 2)]
    )
    return PreTrainedTokenizerFast(
        tokenizer_object=backend,
        bos_token="<s>",
        eos_token="</s>",
        unk_token="<unk>",
        pad_token="<pad>",
        mask_token="<mask>",
        cls_token="<s>",
        sep_token="</s>",
    )


def tiny_arrow(out, *, raw=None, bad: bool = False, seed: int = 0):
    """Every task's Arrow tables under ``out``, built from generated sources (``raw``: where the sources go,
    ``out/raw`` by default); ``bad`` plants one bad record of each kind. Returns ``out``."""
    from pathlib import Path

    from managertower.data import synthetic
    from managertower.data.build_captions import build_karpathy, build_pairs, build_vg
    from managertower.data.build_tasks import build_nlvr2, build_snli_ve, build_vqa

    out = Path(out)
    raw = Path(raw) if raw is not None else out / "raw"
    for dataset, count in (("coco", 12), ("f30k", 8)):
        source = synthetic.write_karpathy(raw / dataset, count=count, seed=seed, bad=bad and dataset == "coco")
        build_karpathy(source, raw / dataset, out, dataset=dataset)
    build_vg(synthetic.write_vg(raw / "vg", seed=seed), raw / "vg", out)
    build_pairs(synthetic.write_pairs(raw / "sbu", seed=seed), raw / "sbu", out, name="sbu", shard_size=5)
    build_vqa(synthetic.write_vqa(raw / "vqa", count=48, seed=seed, bad=bad), raw / "vqa", out)
    build_nlvr2(synthetic.write_nlvr2(raw / "nlvr2", seed=seed, bad=bad) / "data", raw / "nlvr2" / "images", out)
    build_snli_ve(synthetic.write_snli_ve(raw / "snli", seed=seed, bad=bad), raw / "snli" / "images", out)
    return out
