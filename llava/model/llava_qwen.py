"""LLaVA-OneVision on Qwen2: SigLIP tower -> projector -> anyres packing -> spliced into a Qwen2 decoder.

Parameter names equal LLaVA-NeXT's ``LlavaQwenForCausalLM`` (``model.layers.*``, ``model.vision_tower.vision_tower.
vision_model.*``, ``model.mm_projector.*``, ``model.image_newline``, ``lm_head``), so released checkpoints load with
``from_pretrained`` as they are. The decoder-layer loop is ours (``LlavaQwenModel.forward``) so that later
extensions are explicit arguments of that loop; it is pinned to transformers' ``Qwen2Model`` by parity tests.

Forward flow::

    input_ids (with -200 placeholders) --embed--> text rows ----------------------.
    images --SigLIP--> (N, T, C) --projector--> (N, T, D) --pack per image--> image rows --splice--> (B, L, D)
                                                                                   --> Qwen2 decoder --> lm_head
"""

from __future__ import annotations

import dataclasses
import math

import torch
import torch.nn.functional as F
from torch import nn
from transformers import GenerationMixin
from transformers import initialization as init
from transformers.cache_utils import Cache, DynamicCache
from transformers.masking_utils import create_causal_mask, create_sliding_window_causal_mask
from transformers.modeling_outputs import BaseModelOutputWithPast, CausalLMOutputWithPast
from transformers.modeling_utils import slice_logits_to_keep
from transformers.models.qwen2.modeling_qwen2 import (
    Qwen2DecoderLayer,
    Qwen2PreTrainedModel,
    Qwen2RMSNorm,
    Qwen2RotaryEmbedding,
)
from transformers.utils.output_capturing import capture_outputs

from llava.constants import IGNORE_INDEX, IMAGE_TOKEN_INDEX
from llava.model.anyres import AspectRatioMode
from llava.model.config import LlavaQwenConfig, MultimodalSpec
from llava.model.images import ImageBatch, encode_images
from llava.model.manager import AAUM, SAUM, ManagerStack, VisualInjection
from llava.model.projector import build_projector
from llava.model.segments import attends_by_segment, packed_kwargs, positions_in_segments
from llava.model.splice import SpliceResult, count_placeholders, splice
from llava.model.vision_tower import SigLipVisionTower


class LlavaQwenPreTrainedModel(Qwen2PreTrainedModel):
    config: LlavaQwenConfig
    config_class = LlavaQwenConfig
    _no_split_modules = ["Qwen2DecoderLayer", "SiglipEncoderLayer", "SiglipVisionEmbeddings"]  # noqa: RUF012

    @torch.no_grad()
    def _init_weights(self, module):
        super()._init_weights(module)
        if isinstance(module, LlavaQwenModel) and module.image_newline is not None:
            # Same as LLaVA-NeXT when it creates the newline for a fresh projector.
            init.normal_(module.image_newline, mean=0.0, std=1 / math.sqrt(self.config.hidden_size))
        # Managers start as an exact identity, also when added to a checkpoint that has none (warm start).
        if isinstance(module, SAUM):
            init.zeros_(module.weight)
        elif isinstance(module, AAUM):
            init.zeros_(module.gate)
            init.zeros_(module.log_temperature)


class LlavaQwenModel(LlavaQwenPreTrainedModel):
    """Qwen2 trunk plus the vision modules (which live here only to keep upstream parameter names)."""

    def __init__(self, config: LlavaQwenConfig) -> None:
        super().__init__(config)
        spec = MultimodalSpec.from_config(config)
        self.padding_idx = config.pad_token_id
        self.vocab_size = config.vocab_size
        self.embed_tokens = nn.Embedding(config.vocab_size, config.hidden_size, self.padding_idx)
        self.layers = nn.ModuleList(Qwen2DecoderLayer(config, i) for i in range(config.num_hidden_layers))
        self.norm = Qwen2RMSNorm(config.hidden_size, eps=config.rms_norm_eps)
        self.rotary_emb = Qwen2RotaryEmbedding(config=config)
        self.vision_tower = SigLipVisionTower(config.vision_config)
        self.mm_projector = build_projector(spec.projector)
        self.image_newline = nn.Parameter(torch.empty(config.hidden_size)) if spec.use_newline else None
        self.managers = (
            ManagerStack(spec.manager, hidden_size=config.hidden_size, eps=config.rms_norm_eps)
            if spec.manager.enabled
            else None
        )
        self.gradient_checkpointing = False
        self.post_init()

    def get_input_embeddings(self) -> nn.Embedding:
        return self.embed_tokens

    def set_input_embeddings(self, value: nn.Embedding) -> None:
        self.embed_tokens = value

    @capture_outputs
    def forward(
        self,
        input_ids: torch.LongTensor | None = None,
        attention_mask: torch.Tensor | None = None,
        position_ids: torch.LongTensor | None = None,
        past_key_values: Cache | None = None,
        inputs_embeds: torch.Tensor | None = None,
        use_cache: bool | None = None,
        visual_injection: VisualInjection | None = None,
        **kwargs,
    ) -> BaseModelOutputWithPast:
        """The Qwen2 decoder; ``visual_injection`` (prefill only) makes the managers add their output to the hidden
        states at visual positions before their decoder layers."""
        if (input_ids is None) == (inputs_embeds is None):
            raise ValueError("pass exactly one of input_ids or inputs_embeds")
        if inputs_embeds is None:
            inputs_embeds = self.embed_tokens(input_ids)
        use_cache = self.config.use_cache if use_cache is None else use_cache
        if use_cache and past_key_values is None:
            past_key_values = DynamicCache(config=self.config)
        if position_ids is None:
            past_seen = past_key_values.get_seq_length() if past_key_values is not None else 0
            position_ids = (torch.arange(inputs_embeds.shape[1], device=inputs_embeds.device) + past_seen)[None]
        masks = attention_mask
        if not isinstance(masks, dict):
            mask_kwargs = {
                "config": self.config,
                "inputs_embeds": inputs_embeds,
                "attention_mask": attention_mask,
                "past_key_values": past_key_values,
                "position_ids": position_ids,
            }
            masks = {"full_attention": create_causal_mask(**mask_kwargs)}
            if "sliding_attention" in self.config.layer_types:
                masks["sliding_attention"] = create_sliding_window_causal_mask(**mask_kwargs)
        hidden = inputs_embeds
        position_embeddings = self.rotary_emb(hidden, position_ids)
        inject = visual_injection is not None and self.managers is not None
        for layer_idx, decoder_layer in enumerate(self.layers):
            if inject and layer_idx in self.managers:
                hidden = self.managers.inject(layer_idx, hidden, visual_injection)
            hidden = decoder_layer(
                hidden,
                attention_mask=masks[self.config.layer_types[layer_idx]],
                position_embeddings=position_embeddings,
                position_ids=position_ids,
                past_key_values=past_key_values,
                use_cache=use_cache,
                **kwargs,
            )
        return BaseModelOutputWithPast(
            last_hidden_state=self.norm(hidden), past_key_values=past_key_values if use_cache else None
        )


def supervised_loss(lm_head: nn.Module, hidden: torch.Tensor, labels: torch.Tensor, num_items_in_batch=None):
    """Causal-LM cross-entropy computed only where a target exists; equals transformers' ``ForCausalLMLoss``.

    hidden (B, L, D), labels (B, L) with IGNORE_INDEX where nothing is learned. Position t predicts labels[t + 1].
    """
    targets = F.pad(labels, (0, 1), value=IGNORE_INDEX)[:, 1:]  # (B, L)
    picked = targets != IGNORE_INDEX  # (B, L)
    logits = lm_head(hidden[picked]).float()  # (N, V), N = supervised positions
    loss = F.cross_entropy(logits, targets[picked], reduction="sum")
    denominator = num_items_in_batch if num_items_in_batch is not None else picked.sum()
    # A step with no supervised token (a packed row whose only record was bad: llava.data.dataset) learns nothing;
    # 0 / 0 would put NaN into every gradient.
    if isinstance(denominator, torch.Tensor):
        return loss / denominator.to(loss.device).clamp(min=1)
    return loss / max(denominator, 1)


class LlavaQwenForCausalLM(LlavaQwenPreTrainedModel, GenerationMixin):
    _tied_weights_keys = {"lm_head.weight": "model.embed_tokens.weight"}  # noqa: RUF012 (transformers' attribute)

    def __init__(self, config: LlavaQwenConfig) -> None:
        super().__init__(config)
        self.model = LlavaQwenModel(config)
        self.vocab_size = config.vocab_size
        self.lm_head = nn.Linear(config.hidden_size, config.vocab_size, bias=False)
        self.post_init()

    # LLaVA-NeXT accessors, used by its scripts and by lmms-eval.
    def get_model(self) -> LlavaQwenModel:
        return self.model

    def get_vision_tower(self) -> SigLipVisionTower:
        return self.model.vision_tower

    @property
    def mm_spec(self) -> MultimodalSpec:
        """The validated multimodal view of the config, built once per state of the fields it reads (lmms-eval's
        stock wrapper edits ``config.image_aspect_ratio`` between requests; pass ``image_aspect_ratio=`` instead)."""
        config = self.config
        key = repr(
            (
                config.image_aspect_ratio,
                config.image_grid_pinpoints,
                config.mm_patch_merge_type,
                config.mm_projector_type,
                config.mm_hidden_size,
                config.hidden_size,
                config.tokenizer_padding_side,
                config.tokenizer_model_max_length,
                config.manager,
                config.num_hidden_layers,
                # The tower fields MultimodalSpec reads (a full to_dict() would copy the config on every forward).
                config.vision_config.hidden_size,
                config.vision_config.num_hidden_layers,
                config.vision_config.image_size,
                config.vision_config.patch_size,
            )
        )
        cached = getattr(self, "_mm_spec_cache", None)
        if cached is None or cached[0] != key:
            cached = (key, MultimodalSpec.from_config(config))
            self._mm_spec_cache = cached
        return cached[1]

    def prepare_multimodal_inputs(
        self,
        input_ids: torch.LongTensor,
        attention_mask: torch.Tensor | None,
        labels: torch.LongTensor | None,
        images,
        image_sizes=None,
        modalities=None,
        padding_side: str | None = None,
        image_aspect_ratio: str | None = None,
        segment_ids: torch.Tensor | None = None,
    ) -> SpliceResult:
        """Encode the images and splice them into the embedded text (see ``llava.model.splice``).
        ``image_aspect_ratio``: this call's mode (e.g. ``pad`` for a multi-image request) instead of the config's."""
        spec = self.mm_spec
        if image_aspect_ratio is not None:
            spec = dataclasses.replace(spec, aspect_ratio=AspectRatioMode.parse(image_aspect_ratio))
        batch = ImageBatch.from_inputs(images, image_sizes, modalities)
        placeholders = count_placeholders(input_ids, attention_mask)
        batch.check_placeholders(placeholders)
        encoded = encode_images(self.model, batch, spec)
        text_embeds = self.model.embed_tokens(input_ids.clamp_min(0))
        spliced = splice(
            input_ids=input_ids,
            attention_mask=attention_mask,
            labels=labels,
            text_embeds=text_embeds,
            image_tokens=encoded.tokens,
            image_lengths=encoded.lengths,
            image_kinds=encoded.kinds,
            padding_side=padding_side or spec.padding_side,
            # A packed row is never cut: the dataset truncated each of its samples already, and the row may be
            # longer than one sample's limit (--packing_max_tokens >= --model_max_length); cutting it would drop
            # whole samples while the loss is still divided by their supervised tokens.
            max_length=spec.max_length if segment_ids is None else None,
            segment_ids=segment_ids,
        )
        if encoded.experts is None:
            return spliced
        injection = VisualInjection.build(
            spliced.token_kinds, spliced.image_token_index, encoded.experts, spec.manager.targets
        )
        return dataclasses.replace(spliced, visual_injection=injection)

    def forward(
        self,
        input_ids: torch.LongTensor | None = None,
        attention_mask: torch.Tensor | None = None,
        position_ids: torch.LongTensor | None = None,
        past_key_values: Cache | None = None,
        inputs_embeds: torch.Tensor | None = None,
        labels: torch.LongTensor | None = None,
        use_cache: bool | None = None,
        images=None,
        image_sizes=None,
        modalities=None,
        logits_to_keep: int | torch.Tensor = 0,
        return_dict: bool | None = None,
        cache_position=None,  # accepted for callers written for transformers 4.x; positions come from position_ids
        visual_injection: VisualInjection | None = None,
        supervised_logits_only: bool = False,
        image_aspect_ratio: str | None = None,
        segment_ids: torch.Tensor | None = None,
        **kwargs,
    ) -> CausalLMOutputWithPast:
        """LLaVA-NeXT's forward. ``supervised_logits_only`` (training): with ``labels``, project only the positions
        that have a target onto the vocabulary and return no logits -- the same loss without a (B, L, 152K) tensor.
        ``segment_ids`` (1, S): a packed row (``llava.data.packing``), its samples numbered 1, 2, ...; they attend
        only to themselves (``llava.model.segments``) and their positions restart at 0."""
        if inputs_embeds is None and input_ids is not None and images is not None:
            spliced = self.prepare_multimodal_inputs(
                input_ids,
                attention_mask,
                labels,
                images,
                image_sizes,
                modalities,
                image_aspect_ratio=image_aspect_ratio,
                segment_ids=segment_ids,
            )
            input_ids, inputs_embeds = None, spliced.inputs_embeds
            attention_mask, position_ids, labels = spliced.attention_mask, spliced.position_ids, spliced.labels
            visual_injection = spliced.visual_injection
            segment_ids = spliced.segment_ids
        elif input_ids is not None and bool((input_ids == IMAGE_TOKEN_INDEX).any()):
            raise ValueError(
                f"input_ids hold {int((input_ids == IMAGE_TOKEN_INDEX).sum())} image placeholders but no images "
                "were given"
            )
        if segment_ids is not None:
            attention_mask, position_ids, packed = self._packed_attention(segment_ids, past_key_values)
            kwargs = {**kwargs, **packed}
            use_cache = False
        outputs = self.model(
            input_ids=input_ids,
            attention_mask=attention_mask,
            position_ids=position_ids,
            past_key_values=past_key_values,
            inputs_embeds=inputs_embeds,
            use_cache=use_cache,
            visual_injection=visual_injection,
            **kwargs,
        )
        result = self._head(outputs, labels, supervised_logits_only, logits_to_keep, kwargs)
        # return_dict=False: the tuple of the fields that are set, as transformers' models return.
        return result.to_tuple() if return_dict is False else result

    def _head(self, outputs, labels, supervised_logits_only: bool, logits_to_keep, kwargs) -> CausalLMOutputWithPast:
        """The vocabulary projection and the loss of the decoder's ``outputs``."""
        if supervised_logits_only and labels is not None:
            loss = supervised_loss(self.lm_head, outputs.last_hidden_state, labels, kwargs.get("num_items_in_batch"))
            return CausalLMOutputWithPast(loss=loss, logits=None, past_key_values=outputs.past_key_values)
        logits = self.lm_head(slice_logits_to_keep(outputs.last_hidden_state, logits_to_keep))
        loss = None
        if labels is not None:
            loss = self.loss_function(logits=logits, labels=labels, vocab_size=self.config.vocab_size, **kwargs)
        return CausalLMOutputWithPast(
            loss=loss,
            logits=logits,
            past_key_values=outputs.past_key_values,
            hidden_states=outputs.hidden_states,
            attentions=outputs.attentions,
        )

    def _packed_attention(self, segment_ids: torch.Tensor, past_key_values) -> tuple[dict, torch.Tensor, dict]:
        """No mask (the segments replace it), positions restarting per sample, and the varlen keywords every
        decoder layer hands to its attention function."""
        if past_key_values is not None:
            raise ValueError("segment_ids (a packed row) are for training forwards, without a cache")
        implementation = self.config._attn_implementation
        if not attends_by_segment(implementation):
            raise ValueError(
                f"a packed row needs segment-wise attention: attn_implementation={implementation!r} would attend "
                "across samples (set it to segment_implementation(...) of llava.model.segments)"
            )
        masks = dict.fromkeys(set(self.config.layer_types))  # every layer type: no mask
        return masks, positions_in_segments(segment_ids), packed_kwargs(segment_ids)

    @torch.no_grad()
    def generate(
        self,
        inputs: torch.Tensor | None = None,
        images=None,
        image_sizes=None,
        modalities=None,
        image_aspect_ratio: str | None = None,
        **kwargs,
    ):
        """Generate from ids with ``-200`` placeholders; returns only the new tokens (as LLaVA-NeXT does).
        ``image_aspect_ratio``: this call's image mode instead of the config's (see ``prepare_multimodal_inputs``).

        Batches are re-padded on the left whatever the config and the caller's padding say: right padding makes
        batched generation wrong (LLaVA-NeXT issues #365, #398).
        """
        if "inputs_embeds" in kwargs:
            raise ValueError("generate() builds inputs_embeds itself; pass input ids and images")
        attention_mask = kwargs.pop("attention_mask", None)
        kwargs.pop("position_ids", None)  # recomputed from the spliced attention mask
        if inputs is None:
            raise ValueError("generate() needs input ids")
        spliced = self.prepare_multimodal_inputs(
            inputs,
            attention_mask,
            None,
            images,
            image_sizes,
            modalities,
            padding_side="left",
            image_aspect_ratio=image_aspect_ratio,
        )
        if spliced.visual_injection is not None:
            kwargs["visual_injection"] = spliced.visual_injection
        return super().generate(inputs_embeds=spliced.inputs_embeds, attention_mask=spliced.attention_mask, **kwargs)

    def prepare_inputs_for_generation(
        self,
        input_ids,
        past_key_values=None,
        attention_mask=None,
        inputs_embeds=None,
        is_first_iteration=False,
        **kwargs,
    ):
        # Managers inject only where the visual tokens are in the current forward: the prefill. Later steps see
        # the injected states through the KV cache.
        if not is_first_iteration:
            kwargs.pop("visual_injection", None)
        return super().prepare_inputs_for_generation(
            input_ids,
            past_key_values=past_key_values,
            attention_mask=attention_mask,
            inputs_embeds=inputs_embeds,
            is_first_iteration=is_first_iteration,
            **kwargs,
        )
