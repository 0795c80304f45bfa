"""The unimodal experts every variant starts from, pre-trained here as the paper starts from CLIP and RoBERTa.

* vision: transformers' ``CLIPModel`` (QuickGELU, patch 8, 32 px) trained with its own contrastive loss
  (``return_loss=True``) on generated image-caption pairs, saved whole as a transformers folder: ``load_clip``
  takes its ``vision_model.*`` weights and leaves the text tower and the projections unused;
* text: transformers' ``RobertaForMaskedLM`` trained with MLM (``DataCollatorForLanguageModeling``, 15%) on
  generated sentences with the demo's word-level tokenizer, saved as the folder ``load_roberta`` reads.

Both take their sizes from the demo's base :class:`ManagerTowerConfig` (:func:`base_config`), so the loaders find
every tensor in its shape. Probes on held-out data, before and after: CLIP's image-to-caption top-1 within galleries
of 32 (``playground.stage0.probes``), RoBERTa's accuracy on masked tokens against always naming the commonest token.
Each folder is written aside, marked ``COMPLETE`` and renamed into place (``playground.stage0.publish``).
"""

from __future__ import annotations

import time
from pathlib import Path

import torch
from transformers import CLIPConfig, CLIPModel, DataCollatorForLanguageModeling, RobertaForMaskedLM

from managertower.config import (
    CrossModalConfig,
    ManagerTowerConfig,
    TextEncoderConfig,
    TwoTowerManagerConfig,
    VisionEncoderConfig,
)
from managertower.data.transforms import TransformKind, build_transform
from managertower.encoders.text import roberta_config
from playground.managertower.data import expert_pairs, expert_sentences
from playground.managertower.settings import ModelSizes, TwoTowerDemoConfig
from playground.stage0 import finished, publish, read_report, staging
from playground.stage0.probes import optimise, retrieval_accuracy

CLIP_TEXT_LAYERS = 2  # CLIP's text tower only shapes the contrastive loss; it is not kept


def base_config(sizes: ModelSizes, vocab_size: int) -> ManagerTowerConfig:
    """The config every variant's preset is applied on (``--model_config``); the experts are built to match it."""
    positions = sizes.max_text_len + 2  # RoBERTa's positions start after the pad id (1)
    return ManagerTowerConfig(
        text=TextEncoderConfig(
            vocab_size=vocab_size,
            hidden_size=sizes.text_hidden,
            layers=sizes.depth,
            heads=sizes.text_heads,
            intermediate_size=2 * sizes.text_hidden,
            max_positions=positions,
            dropout=0.0,
        ),
        vision=VisionEncoderConfig(
            hidden_size=sizes.vision_hidden, layers=sizes.depth, patch_size=sizes.patch, image_size=sizes.image
        ),
        cross=CrossModalConfig(
            layers=sizes.cross_layers,
            hidden_size=sizes.cross_hidden,
            heads=sizes.cross_heads,
            intermediate_size=2 * sizes.cross_hidden,
            dropout=0.0,
        ),
        manager=TwoTowerManagerConfig(experts=sizes.experts),
    )


def clip_config(config: ManagerTowerConfig, vocab_size: int) -> CLIPConfig:
    vision, text = config.vision, config.text
    vision_config = {
        "hidden_size": vision.hidden_size,
        "intermediate_size": 4 * vision.hidden_size,
        "num_hidden_layers": vision.layers,
        "num_attention_heads": vision.hidden_size // 64,
        "image_size": vision.image_size,
        "patch_size": vision.patch_size,
        "hidden_act": "quick_gelu",
        "layer_norm_eps": vision.layer_norm_eps,
    }
    text_config = {
        "vocab_size": vocab_size + 1,
        "hidden_size": text.hidden_size,
        "intermediate_size": 2 * text.hidden_size,
        "num_hidden_layers": CLIP_TEXT_LAYERS,
        "num_attention_heads": text.heads,
        "max_position_embeddings": text.max_positions,
        "pad_token_id": 1,
        "bos_token_id": 0,
        # One id past the tokenizer's is CLIP's end token: CLIP pools the text at its first end token, but reads an
        # eos_token_id of 2 (RoBERTa's </s>) as the legacy "largest id" rule.
        "eos_token_id": vocab_size,
    }
    return CLIPConfig(vision_config=vision_config, text_config=text_config, projection_dim=vision.hidden_size)


def _clip_inputs(tokenizer, images, captions, config: ManagerTowerConfig) -> dict[str, torch.Tensor]:
    transform = build_transform(TransformKind.CLIP, config.vision.image_size)  # pre-training's own view
    text = tokenizer(
        captions, padding="max_length", truncation=True, max_length=config.text.max_positions - 2, return_tensors="pt"
    )
    ids = torch.where(text["input_ids"] == tokenizer.eos_token_id, len(tokenizer), text["input_ids"])
    return {
        "input_ids": ids,
        "attention_mask": text["attention_mask"],
        "pixel_values": torch.stack([transform(image) for image in images]),
    }


@torch.no_grad()
def _clip_probe(model: CLIPModel, inputs: dict, captions: list[str]) -> dict:
    model.eval()
    out = model(**inputs)
    model.train()
    return retrieval_accuracy(out.image_embeds, out.text_embeds, captions)


def pretrain_clip(out: Path, cfg: TwoTowerDemoConfig, config: ManagerTowerConfig, tokenizer) -> dict:
    if finished(out):
        return read_report(out)
    started = time.time()
    train = _clip_inputs(tokenizer, *expert_pairs(cfg.counts.expert_pairs, seed=cfg.seed), config)
    held_images, held_captions = expert_pairs(cfg.counts.expert_held_out, seed=cfg.seed, held_out=True)
    held = _clip_inputs(tokenizer, held_images, held_captions, config)
    torch.manual_seed(cfg.seed)
    model = CLIPModel(clip_config(config, len(tokenizer)))
    before = _clip_probe(model, held, held_captions)
    order = torch.Generator().manual_seed(cfg.seed)

    def step_loss() -> torch.Tensor:
        batch = torch.randperm(len(train["input_ids"]), generator=order)[:64]
        return model(**{k: v[batch] for k, v in train.items()}, return_loss=True).loss

    losses = optimise(
        model, step_loss, lr=1e-3, weight_decay=1e-4, warmup=30, steps=cfg.steps.clip, desc="expert: CLIP"
    )
    report = {"losses": losses, "before": before, "after": _clip_probe(model, held, held_captions)}
    tmp = staging(out)
    model.save_pretrained(tmp)
    report["seconds"] = round(time.time() - started, 1)
    return publish(tmp, out, steps=cfg.steps.clip, report=report)


def _masked(collator, ids: torch.Tensor, mask: torch.Tensor) -> dict[str, torch.Tensor]:
    return collator([{"input_ids": i, "attention_mask": m} for i, m in zip(ids, mask, strict=True)])


@torch.no_grad()
def _mlm_probe(model: RobertaForMaskedLM, batch: dict[str, torch.Tensor]) -> dict:
    """Accuracy on the masked tokens of one fixed masking, and that of always naming the commonest masked token."""
    model.eval()
    predicted = model(input_ids=batch["input_ids"], attention_mask=batch["attention_mask"]).logits.argmax(-1)
    model.train()
    where = batch["labels"] != -100
    targets = batch["labels"][where]
    return {
        "accuracy": float((predicted[where] == targets).float().mean()),
        "chance": float(targets.bincount().max() / len(targets)),
        "tokens": int(where.sum()),
    }


def pretrain_roberta(out: Path, cfg: TwoTowerDemoConfig, config: ManagerTowerConfig, tokenizer) -> dict:
    if finished(out):
        return read_report(out)
    started = time.time()
    length = config.text.max_positions - 2

    def encode(texts: list[str]) -> tuple[torch.Tensor, torch.Tensor]:
        text = tokenizer(texts, padding="max_length", truncation=True, max_length=length, return_tensors="pt")
        return text["input_ids"], text["attention_mask"]

    ids, mask = encode(expert_sentences(cfg.counts.expert_texts, seed=cfg.seed))
    held_ids, held_mask = encode(expert_sentences(cfg.counts.expert_held_out, seed=cfg.seed, held_out=True))
    held = _masked(DataCollatorForLanguageModeling(tokenizer, seed=cfg.seed + 1), held_ids, held_mask)
    collator = DataCollatorForLanguageModeling(tokenizer, mlm_probability=0.15, seed=cfg.seed)
    torch.manual_seed(cfg.seed)
    model = RobertaForMaskedLM(roberta_config(config.text, "eager"))
    before = _mlm_probe(model, held)
    order = torch.Generator().manual_seed(cfg.seed)

    def step_loss() -> torch.Tensor:
        batch = torch.randperm(len(ids), generator=order)[:64]
        return model(**_masked(collator, ids[batch], mask[batch])).loss

    losses = optimise(
        model, step_loss, lr=1e-3, weight_decay=0.01, warmup=30, steps=cfg.steps.roberta, desc="expert: RoBERTa"
    )
    report = {"losses": losses, "before": before, "after": _mlm_probe(model, held)}
    tmp = staging(out)
    model.save_pretrained(tmp)
    report["seconds"] = round(time.time() - started, 1)
    return publish(tmp, out, steps=cfg.steps.roberta, report=report)


def reports(cfg: TwoTowerDemoConfig) -> dict[str, dict]:
    """Both finished experts' reports: ``{"clip": ..., "roberta": ...}``."""
    return {name: read_report(cfg.experts / name) for name in ("clip", "roberta")}


def summary(reports: dict[str, dict]) -> list[str]:
    clip, roberta = reports["clip"], reports["roberta"]
    clip_line = (
        f"expert CLIP: loss {clip['losses'][0]:.2f} -> {clip['losses'][-1]:.2f} in {clip['seconds']:.0f} s; held-out "
        f"image-to-caption top-1 {100 * clip['before']['accuracy']:.1f}% -> {100 * clip['after']['accuracy']:.1f}% "
        f"(chance {100 * clip['after']['chance']:.1f}%, galleries of {clip['after']['gallery']})"
    )
    roberta_line = (
        f"expert RoBERTa: loss {roberta['losses'][0]:.2f} -> {roberta['losses'][-1]:.2f} in {roberta['seconds']:.0f} "
        f"s; held-out masked-token accuracy {100 * roberta['before']['accuracy']:.1f}% -> "
        f"{100 * roberta['after']['accuracy']:.1f}% (commonest token {100 * roberta['after']['chance']:.1f}%)"
    )
    return [clip_line, roberta_line]


def checks(reports: dict[str, dict]) -> list[tuple[str, bool]]:
    clip, roberta = reports["clip"]["after"], reports["roberta"]["after"]
    clip_text = (
        f"expert CLIP: held-out retrieval {100 * clip['accuracy']:.1f}% beats chance {100 * clip['chance']:.1f}%"
    )
    roberta_text = (
        f"expert RoBERTa: held-out masked-token accuracy {100 * roberta['accuracy']:.1f}% beats the commonest token "
        f"{100 * roberta['chance']:.1f}%"
    )
    return [(clip_text, clip["accuracy"] > clip["chance"]), (roberta_text, roberta["accuracy"] > roberta["chance"])]
