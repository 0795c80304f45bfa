"""Forward hooks that turn one sample's forward pass into running statistics, then let every map go.

``with Probe(model, metrics) as probe: probe.observe(sample)`` attaches hooks only for the requested metrics:

* ``layer_similarity``: each decoder layer's output against the previous layer's (the input embeddings for layer 1),
  visual and text tokens separately;
* ``attention_entropy`` / ``head_kl``: each decoder layer's attention weights, restricted to two blocks and
  renormalised over the block's keys: ``visual_self`` (image-token queries x image-token keys) and
  ``text_to_visual`` (text queries that come after an image x image-token keys);
* ``attention_distance``: each SigLIP layer's attention weights, per head;
* ``manager_weights``: the managers' aggregation weights (``ManagerStack.record``).

Attention metrics switch the parts they read to eager attention for the probe's lifetime (SDPA never forms the
weights) and restore the previous implementation afterwards. A hook reduces its layer's map to a few sums at once,
in chunks of ``query_chunk`` queries, so memory stays at one layer's map -- what eager attention allocates anyway.

Layers are reported 1-based, as in the paper's figures: decoder layer ``l`` (output of ``model.layers[l - 1]``),
SigLIP layer ``k`` (``V_k``).
"""

from __future__ import annotations

from dataclasses import dataclass

import torch
from typing_extensions import Self

from llava.analysis import stats
from llava.analysis.samples import AnalysisSample
from llava.analysis.stats import Running
from llava.model.manager import SAUM

METRICS = ("layer_similarity", "attention_entropy", "head_kl", "attention_distance", "manager_weights")
LLM_ATTENTION_METRICS = ("attention_entropy", "head_kl")
PARTS = ("visual", "text")


@dataclass(frozen=True, slots=True)
class TokenLayout:
    """Positions of one sample's tokens (batch of one, no padding)."""

    visual: torch.Tensor  # (V,) long, increasing: image tokens (base, grid and newline rows)
    text: torch.Tensor  # (T,) long, increasing: text tokens

    @classmethod
    def from_kinds(cls, token_kinds: torch.Tensor, attention_mask: torch.Tensor) -> TokenLayout:
        """``token_kinds`` and ``attention_mask`` (1, L) from the splice; kinds are >= 0 on image tokens."""
        assert token_kinds.shape[0] == 1, "the probe runs one sample at a time"
        real = attention_mask[0].bool()
        visual = (token_kinds[0] >= 0) & real
        return cls(visual=visual.nonzero().squeeze(1), text=(~visual & real).nonzero().squeeze(1))

    def parts(self) -> dict[str, torch.Tensor]:
        return {"visual": self.visual, "text": self.text}

    def blocks(self) -> dict[str, tuple[torch.Tensor, torch.Tensor]]:
        """``block -> (query positions, key positions)``; text before the first image sees no image token."""
        if self.visual.numel() == 0:
            return {}
        after_image = self.text[self.text > self.visual[0]]
        return {"visual_self": (self.visual, self.visual), "text_to_visual": (after_image, self.visual)}


def splice_sample(model, sample: AnalysisSample):
    """``sample`` through the tower and spliced into its text (a batch of one, on the model's device and dtype)."""
    device, dtype = model.device, model.dtype
    return model.prepare_multimodal_inputs(
        sample.input_ids.to(device)[None],
        None,
        None,
        [image.to(device, dtype) for image in sample.images],
        sample.image_sizes,
        sample.modalities,
    )


def decoder_forward(model, spliced, **kwargs):
    """The decoder over a splice, the managers injecting, without the LM head or a cache: what the probe hooks, and
    what ``bench/analysis_memory.py`` measures it against. ``kwargs`` go to the decoder (``output_attentions``)."""
    return model.model(
        inputs_embeds=spliced.inputs_embeds,
        attention_mask=spliced.attention_mask,
        position_ids=spliced.position_ids,
        visual_injection=spliced.visual_injection,
        use_cache=False,
        **kwargs,
    )


class Probe:
    def __init__(self, model, metrics: tuple[str, ...], *, query_chunk: int = 512) -> None:
        unknown = sorted(set(metrics) - set(METRICS))
        if unknown or not metrics:
            raise ValueError(f"metrics {unknown or '(none)'}: choose from {METRICS}")
        if query_chunk < 1:
            raise ValueError(f"query_chunk={query_chunk} must be >= 1")
        self.model = model
        self.metrics = tuple(metrics)
        self.query_chunk = query_chunk
        self.similarity = Running()  # (layer, part)
        self.entropy = Running()  # (layer, block), over heads and queries
        self.max_entropy = Running()  # (layer, block): log of the keys a query may see (uniform attention)
        self.mass = Running()  # (layer, block): attention mass on the block's keys before renormalising
        self.kl = Running()  # (layer, block), over queries
        self.distance = Running()  # (vision layer, head): pixels
        self.token_weights = Running()  # (layer, expert): AAUM per-token weights
        self.samples = 0
        self._layout: TokenLayout | None = None
        self._previous: torch.Tensor | None = None
        self._handles: list = []
        self._restore: dict | None = None
        self._distances: torch.Tensor | None = None

    @property
    def managers(self):
        return self.model.model.managers

    # -- attaching ------------------------------------------------------------------------------------------------

    def __enter__(self) -> Self:
        self._switch_attention()
        trunk = self.model.model
        if "layer_similarity" in self.metrics:
            for index, layer in enumerate(trunk.layers):
                self._handles.append(layer.register_forward_hook(self._similarity_hook(index + 1)))
        if any(m in self.metrics for m in LLM_ATTENTION_METRICS):
            for index, layer in enumerate(trunk.layers):
                self._handles.append(layer.self_attn.register_forward_hook(self._attention_hook(index + 1)))
        if "attention_distance" in self.metrics:
            tower = trunk.vision_tower
            self._distances = stats.patch_distances(tower.tokens_per_side, tower.config.patch_size)
            for depth, layer in enumerate(tower.vision_tower.vision_model.encoder.layers, start=1):
                self._handles.append(layer.self_attn.register_forward_hook(self._distance_hook(depth)))
        if "manager_weights" in self.metrics and self.managers is not None:
            self.managers.record = True
        return self

    def __exit__(self, *exc) -> None:
        for handle in self._handles:
            handle.remove()
        self._handles.clear()
        if self.managers is not None:
            self.managers.record = False
            self.managers.recorded.clear()
        if self._restore is not None:
            self.model.set_attn_implementation(self._restore)
        self._layout = self._previous = None

    def _switch_attention(self) -> None:
        llm = self.model.config._attn_implementation
        vision = self.model.model.vision_tower.vision_tower.vision_model.config._attn_implementation
        wanted = {
            "": "eager" if any(m in self.metrics for m in LLM_ATTENTION_METRICS) else llm,
            "vision_config": "eager" if "attention_distance" in self.metrics else vision,
        }
        if wanted != {"": llm, "vision_config": vision}:
            self._restore = {"": llm, "vision_config": vision}
            self.model.set_attn_implementation(wanted)

    # -- one sample -----------------------------------------------------------------------------------------------

    @torch.no_grad()
    def observe(self, sample: AnalysisSample) -> None:
        """Run one sample through the tower and the decoder (no LM head) and add its statistics."""
        spliced = splice_sample(self.model, sample)
        self._layout = TokenLayout.from_kinds(spliced.token_kinds, spliced.attention_mask)
        self._previous = spliced.inputs_embeds
        if self.managers is not None:
            self.managers.recorded.clear()
        decoder_forward(self.model, spliced)
        if "manager_weights" in self.metrics and self.managers is not None:
            self._collect_manager_weights()
        self._layout = self._previous = None
        self.samples += 1

    def saum_weights(self) -> dict[int, torch.Tensor]:
        """1-based decoder layer -> learned SAUM weights (E, D); empty without SAUMs."""
        if self.managers is None:
            return {}
        return {layer + 1: weights.float().cpu() for layer, weights in self.managers.aggregation_weights().items()}

    def _collect_manager_weights(self) -> None:
        for layer, weights in self.managers.recorded.items():
            if isinstance(self.managers.layers[str(layer)], SAUM):
                continue  # learned, the same for every token: read by saum_weights()
            for expert in range(weights.shape[1]):  # AAUM (N, E)
                self.token_weights.add((layer + 1, expert), weights[:, expert])

    # -- hooks ----------------------------------------------------------------------------------------------------

    def _similarity_hook(self, layer: int):
        def hook(module, args, output):
            hidden = output[0] if isinstance(output, tuple) else output  # (1, L, D)
            for part, positions in self._layout.parts().items():
                if positions.numel():
                    self.similarity.add(
                        (layer, part), stats.row_cosine(hidden[0, positions], self._previous[0, positions])
                    )
            self._previous = hidden

        return hook

    def _attention_hook(self, layer: int):
        def hook(module, args, output):
            weights = output[1]
            if weights is None:
                raise RuntimeError("the decoder's attention returned no weights: the probe needs eager attention")
            for block, (queries, keys) in self._layout.blocks().items():
                self._attention_block(layer, block, weights[0], queries, keys)

        return hook

    def _attention_block(
        self, layer: int, block: str, weights: torch.Tensor, queries: torch.Tensor, keys: torch.Tensor
    ) -> None:
        """``weights`` (H, L, L) of one layer; statistics of rows ``queries`` over columns ``keys``."""
        if queries.numel() == 0:
            return
        visible = torch.searchsorted(keys, queries, right=True)  # (Q,) keys at or before each query (causal)
        for chunk, seen in zip(queries.split(self.query_chunk), visible.split(self.query_chunk)):
            # Keys after the chunk's last query carry no attention (causal): leave them out of the work.
            rows = _gather(weights, chunk, keys[: int(seen[-1])]).float()  # (H, c, K')
            mass = rows.sum(dim=-1)  # (H, c)
            kept = (mass > 0).all(dim=0)  # (c,): a row with no mass on the block has no distribution there
            probs = stats.renormalize(rows[:, kept])  # (H, c', K)
            key = (layer, block)
            self.mass.add(key, mass[:, kept])
            if "attention_entropy" in self.metrics:
                self.entropy.add(key, stats.entropy(probs))
                self.max_entropy.add(key, seen[kept].double().log())
            if "head_kl" in self.metrics and probs.shape[0] > 1:
                self.kl.add(key, stats.mean_head_kl(probs))

    def _distance_hook(self, depth: int):
        def hook(module, args, output):
            weights = output[1]  # (N, H, T, T)
            if weights is None:
                raise RuntimeError("SigLIP's attention returned no weights: the probe needs eager attention")
            crops, heads, tokens, _ = weights.shape
            sums = stats.attention_distance_sums(weights.float(), self._distances.to(weights.device))  # (H,)
            for head in range(heads):
                self.distance.add_sum((depth, head), float(sums[head]), crops * tokens)

        return hook


def _gather(weights: torch.Tensor, rows: torch.Tensor, columns: torch.Tensor) -> torch.Tensor:
    """``weights[:, rows][:, :, columns]`` for (H, L, L) weights; contiguous index runs (one image) are sliced."""
    if _is_run(rows):
        picked = weights[:, int(rows[0]) : int(rows[-1]) + 1]
    else:
        picked = weights.index_select(1, rows)
    if _is_run(columns):
        return picked[..., int(columns[0]) : int(columns[-1]) + 1]
    return picked.index_select(2, columns)


def _is_run(index: torch.Tensor) -> bool:
    return index.numel() > 0 and int(index[-1]) - int(index[0]) + 1 == index.numel()
