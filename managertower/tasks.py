"""A Two-Tower model with one task's heads and loss: what the train entry optimises (paper Sec. IV, Tables IX, XIV).

    model = TwoTowerForTask(backbone, Task.VQA, HeadConfig(hidden_scale=2))
    out = model(**batch)  # {"loss": ..., "logits": ...}

* ``pretrain``: MLM (masked text, true image) + ITM (unmasked text; a random half gets a false image), unweighted;
* ``vqa``: BCE x 3129 on soft scores; ``snli_ve``: 3-way CE (the text is the hypothesis);
* ``nlvr2``: two passes (image types 1 and 2), ``cls_feats`` concatenated, 2-way CE;
* ``f30k``: the experts once; ITC (all-gathered) + ITM on (t, v), (t, v_neg), (t_neg, v).

For Flickr30K the ITC features, the projected stacks and the image ids are gathered from every rank (with their
gradients); each local text draws a hard negative image and each local image a hard negative text from the
gathered ones (``objectives.hard_negatives``, never a positive), and the fusion runs on the gathered stacks, so the
experts are not rerun.
"""

from __future__ import annotations

from dataclasses import dataclass

import torch
import torch.distributed as dist
from torch import nn
from torch.nn import functional as F

from managertower import objectives as obj
from managertower.data.answers import VQAV2_ANSWERS
from managertower.data.arrow import Task
from managertower.heads import ClassifierHead, ContrastiveHeads, ITMHead, MLMHead
from managertower.model import ManagerTowerModel
from managertower.pairing import grow_token_types, nlvr2_features

CLASSES = {Task.SNLI_VE: 3, Task.NLVR2: 2}


@dataclass(frozen=True, kw_only=True, slots=True)
class HeadConfig:
    vqa_classes: int = VQAV2_ANSWERS
    hidden_scale: int = 1  # the classifiers' hidden width is 2D x this (Table XIV)
    nlvr2_dropout: float = 0.0  # the released NLVR2 script sets nlvr2_drop_rate=0
    itc_dim: int = 256
    temperature: float = 0.07

    def __post_init__(self) -> None:
        if self.vqa_classes < 1 or self.hidden_scale < 1 or self.itc_dim < 1:
            raise ValueError(f"HeadConfig: vqa_classes, hidden_scale, itc_dim must be >= 1 ({self})")


class TwoTowerForTask(nn.Module):
    def __init__(self, backbone: ManagerTowerModel, task: Task, heads: HeadConfig | None = None) -> None:
        super().__init__()
        self.task, self.head_config = Task(task), heads or HeadConfig()
        cfg, hidden = backbone.config, backbone.config.cross.hidden_size
        if self.task is Task.NLVR2:
            grow_token_types(backbone)
        self.backbone = backbone
        self.heads = nn.ModuleDict(self._heads(hidden, cfg.text.vocab_size, cfg.mlm_norm_eps))
        # ITC is not a "head" for the learning rates: the original's names put it with the cross-modal modules.
        self.itc = (
            ContrastiveHeads(
                cfg.text.hidden_size,
                cfg.vision.hidden_size,
                dim=self.head_config.itc_dim,
                temperature=self.head_config.temperature,
            )
            if self.task is Task.F30K
            else None
        )
        std = cfg.init_std
        for module in [*self.heads.modules(), *(self.itc.modules() if self.itc is not None else ())]:
            if isinstance(module, nn.Linear):  # the original's init_weights on freshly created heads
                nn.init.normal_(module.weight, std=std)
                if module.bias is not None:
                    nn.init.zeros_(module.bias)

    def _heads(self, hidden: int, vocab: int, mlm_eps: float) -> dict[str, nn.Module]:
        h = self.head_config
        if self.task is Task.PRETRAIN:
            return {"mlm": MLMHead(hidden, vocab, eps=mlm_eps), "itm": ITMHead(hidden)}
        if self.task is Task.F30K:
            return {"itm": ITMHead(hidden)}
        if self.task is Task.VQA:
            return {"classifier": ClassifierHead(hidden, h.vqa_classes, hidden_scale=h.hidden_scale)}
        inputs = 2 if self.task is Task.NLVR2 else 1
        dropout = h.nlvr2_dropout if self.task is Task.NLVR2 else 0.0
        return {
            "classifier": ClassifierHead(
                hidden, CLASSES[self.task], inputs=inputs, hidden_scale=h.hidden_scale, dropout=dropout
            )
        }

    def forward(self, **batch) -> dict[str, torch.Tensor]:
        return getattr(self, f"_{self.task.value}")(**batch)

    # -- one method per task -----------------------------------------------------------------------------------

    def _pretrain(self, input_ids, attention_mask, pixel_values, false_pixel_values, mlm_input_ids, mlm_labels, **_):
        masked = self.backbone(mlm_input_ids, attention_mask, pixel_values)
        mlm_logits = self.heads["mlm"](masked.text_features)  # (B, Lt, vocab)
        # The mean over masked tokens; a batch of short texts can draw none, and then the loss is 0, not NaN.
        masked_count = (mlm_labels != -100).sum().clamp(min=1)
        mlm_loss = F.cross_entropy(mlm_logits.flatten(0, 1), mlm_labels.flatten(), reduction="sum") / masked_count
        false = obj.itm_negatives(input_ids.shape[0]).to(input_ids.device)  # (B,) True: a false image
        images = torch.where(false[:, None, None, None], false_pixel_values, pixel_values)
        itm_logits = self.heads["itm"](self.backbone(input_ids, attention_mask, images).cls_feats)
        itm_labels = (~false).long()
        itm_loss = F.cross_entropy(itm_logits, itm_labels)
        return {
            "loss": mlm_loss + itm_loss,
            "mlm_loss": mlm_loss.detach(),
            "itm_loss": itm_loss.detach(),
            "itm_logits": itm_logits,
            "itm_labels": itm_labels,
        }

    def _vqa(self, input_ids, attention_mask, pixel_values, vqa_labels, vqa_scores, **_):
        logits = self.heads["classifier"](self.backbone(input_ids, attention_mask, pixel_values).cls_feats)
        targets = obj.vqa_targets(vqa_labels, vqa_scores, self.head_config.vqa_classes).to(logits)
        return {"loss": obj.vqa_loss(logits, targets), "logits": logits, "targets": targets}

    def _snli_ve(self, input_ids, attention_mask, pixel_values, label, **_):
        logits = self.heads["classifier"](self.backbone(input_ids, attention_mask, pixel_values).cls_feats)
        return {"loss": F.cross_entropy(logits, label), "logits": logits, "labels": label}

    def _nlvr2(self, input_ids, attention_mask, pixel_values_0, pixel_values_1, label, **_):
        pair = nlvr2_features(self.backbone, input_ids, attention_mask, pixel_values_0, pixel_values_1)
        logits = self.heads["classifier"](pair)
        return {"loss": F.cross_entropy(logits, label), "logits": logits, "labels": label}

    def _f30k(self, input_ids, attention_mask, pixel_values, image_index, **_):
        text_stack, image_stack, text_top, image_top = self.backbone.unimodal_stacks(
            input_ids, attention_mask, pixel_values, 1
        )
        text, image, scale = self.itc(text_top, image_top)  # (B, E), (B, E)
        everyone = _gather(text, image, image_index, text_stack, image_stack, attention_mask)
        all_text, all_image, all_index, all_text_stack, all_image_stack, all_mask = everyone
        t2i = text @ all_image.T * scale  # (B, W·B): local texts x every image
        i2t = image @ all_text.T * scale  # (B, W·B): local images x every text
        pos_t2i = obj.positives(image_index, all_index)
        pos_i2t = obj.positives(all_index, image_index).T
        itc_loss = (obj.soft_cross_entropy(t2i, pos_t2i) + obj.soft_cross_entropy(i2t, pos_i2t)) / 2
        negative_image = obj.hard_negatives(t2i, pos_t2i)  # (B,) into the gathered images
        negative_text = obj.hard_negatives(i2t, pos_i2t)  # (B,) into the gathered texts
        texts = torch.cat([text_stack, text_stack, all_text_stack[negative_text]])
        masks = torch.cat([attention_mask, attention_mask, all_mask[negative_text]])
        images = torch.cat([image_stack, all_image_stack[negative_image], image_stack])
        itm_logits = self.heads["itm"](self.backbone.fuse(texts, images, masks)[2])  # (3B, 2)
        batch = input_ids.shape[0]
        itm_labels = torch.cat([torch.ones(batch), torch.zeros(2 * batch)]).long().to(itm_logits.device)
        itm_loss = F.cross_entropy(itm_logits, itm_labels)
        # The drawn negatives' image ids (``image_index``) ride along for checks; itc_loss keeps its graph for them.
        return {
            "loss": itc_loss + itm_loss,
            "itc_loss": itc_loss,
            "itm_loss": itm_loss.detach(),
            "negative_images": all_index[negative_image],
            "negative_texts": all_index[negative_text],
        }


def _gather(*tensors: torch.Tensor) -> list[torch.Tensor]:
    """Each tensor concatenated over the ranks along dim 0, rank order; gradients flow back to the owner."""
    if not (dist.is_available() and dist.is_initialized()) or dist.get_world_size() == 1:
        return list(tensors)
    from torch.distributed.nn.functional import all_gather

    out = []
    for tensor in tensors:
        if tensor.is_floating_point():
            out.append(torch.cat(all_gather(tensor)))
        else:  # ids and masks carry no gradient
            parts = [torch.empty_like(tensor) for _ in range(dist.get_world_size())]
            dist.all_gather(parts, tensor.contiguous())
            out.append(torch.cat(parts))
    return out
