"""Splice image tokens into the text sequence at ``IMAGE_TOKEN_INDEX`` placeholders, truncate, and re-pad.

The whole batch becomes one gather: a source table holds every text embedding (rows ``b * S + s``), then every
packed image token (all images of the batch, in order), then one zero row for padding; each output position
stores the row it takes. The same index places anything else aligned with image tokens (labels, token kinds,
the manager's expert features) without a second pass over the batch.

Shapes: B batch, S input length (with placeholders), D hidden size, N total image tokens, L output length.
"""

from __future__ import annotations

import dataclasses
from dataclasses import dataclass
from typing import TYPE_CHECKING

import torch

from llava.constants import IGNORE_INDEX, IMAGE_TOKEN_INDEX
from llava.model.segments import positions_in_segments

if TYPE_CHECKING:
    from llava.model.manager import VisualInjection


@dataclass(frozen=True, slots=True)
class SpliceResult:
    inputs_embeds: torch.Tensor  # (B, L, D)
    attention_mask: torch.Tensor  # (B, L) long
    position_ids: torch.Tensor  # (B, L) long, counting real tokens only
    labels: torch.Tensor | None  # (B, L), IGNORE_INDEX on image tokens and padding
    image_token_index: torch.Tensor  # (B, L) long: row in the image-token table, -1 elsewhere
    token_kinds: torch.Tensor  # (B, L) int8: packing kind on image tokens, -1 elsewhere
    num_truncated: int  # samples that were cut to max_length
    visual_injection: VisualInjection | None = None  # set by the model when managers are enabled
    segment_ids: torch.Tensor | None = None  # (B, L) packed rows: the sample of each position (1, 2, ...), 0 padding


def count_placeholders(input_ids: torch.Tensor, attention_mask: torch.Tensor | None) -> list[int]:
    is_placeholder = input_ids == IMAGE_TOKEN_INDEX
    if attention_mask is not None:
        is_placeholder &= attention_mask.bool()
    return is_placeholder.sum(dim=1).tolist()


def splice(
    *,
    input_ids: torch.Tensor,
    attention_mask: torch.Tensor | None,
    labels: torch.Tensor | None,
    text_embeds: torch.Tensor,
    image_tokens: torch.Tensor,
    image_lengths: list[int],
    image_kinds: torch.Tensor,
    padding_side: str,
    max_length: int | None,
    segment_ids: torch.Tensor | None = None,
) -> SpliceResult:
    """Build the spliced batch. ``image_lengths`` lists the images consumed by placeholders, in order; the table
    ``image_tokens`` may hold further rows after them (dummy images of text-only samples, which stay in the graph
    with zero gradient but are never placed). ``segment_ids`` (B, S) marks the samples of packed rows (1, 2, ...;
    0 on padding): each image token takes its placeholder's, and positions restart in every sample."""
    batch, seq = input_ids.shape
    device = input_ids.device
    mask = attention_mask.bool() if attention_mask is not None else torch.ones_like(input_ids, dtype=torch.bool)
    num_text = batch * seq
    image_starts = torch.tensor([0, *image_lengths], device=device).cumsum(0)
    lengths_all = torch.tensor(image_lengths, dtype=torch.long, device=device)
    rows, segments, truncated, next_image = [], [], 0, 0
    for b in range(batch):
        positions = mask[b].nonzero().squeeze(1)
        is_image = input_ids[b, positions] == IMAGE_TOKEN_INDEX
        count = int(is_image.sum())
        starts = b * seq + positions
        lengths = torch.ones_like(positions)
        if count:
            starts[is_image] = num_text + image_starts[next_image : next_image + count]
            lengths[is_image] = lengths_all[next_image : next_image + count]
        next_image += count
        segment_begin = lengths.cumsum(0) - lengths
        total = int(lengths.sum())
        # Row for every output position: segment start + offset inside the segment (0 for text tokens).
        index = torch.repeat_interleave(starts, lengths, output_size=total)
        index += torch.arange(total, device=device) - torch.repeat_interleave(segment_begin, lengths, output_size=total)
        if max_length is not None and total > max_length:
            index = index[: _safe_cut(lengths, segment_begin, max_length)]
            truncated += 1
        rows.append(index)
        if segment_ids is not None:
            segments.append(
                torch.repeat_interleave(segment_ids[b, positions], lengths, output_size=total)[: len(index)]
            )
    assert next_image == len(image_lengths), "placeholders and images were validated by the caller"
    spliced = _assemble(rows, text_embeds, image_tokens, image_kinds, labels, num_text, padding_side, truncated)
    if segment_ids is None:
        return spliced
    return _with_segments(spliced, segments, padding_side)


def _with_segments(spliced: SpliceResult, segments: list[torch.Tensor], padding_side: str) -> SpliceResult:
    """Segment ids placed like the rows, and position ids that restart at every sample's first token."""
    ids = torch.zeros_like(spliced.attention_mask)
    longest = ids.shape[1]
    for b, row in enumerate(segments):
        span = slice(longest - len(row), longest) if padding_side == "left" else slice(0, len(row))
        ids[b, span] = row
    return dataclasses.replace(spliced, position_ids=positions_in_segments(ids), segment_ids=ids)


def _safe_cut(lengths: torch.Tensor, segment_begin: torch.Tensor, max_length: int) -> int:
    """Largest cut <= max_length that does not split an image's tokens (the image is dropped whole)."""
    ends = segment_begin + lengths
    inside = (segment_begin < max_length) & (ends > max_length)
    if inside.any():
        return int(segment_begin[inside][0])
    return max_length


def _assemble(rows, text_embeds, image_tokens, image_kinds, labels, num_text, padding_side, truncated) -> SpliceResult:
    batch = len(rows)
    device = text_embeds.device
    dim = text_embeds.shape[-1]
    longest = max(len(r) for r in rows)
    pad_row = num_text + image_tokens.shape[0]
    index = torch.full((batch, longest), pad_row, dtype=torch.long, device=device)
    attention = torch.zeros((batch, longest), dtype=torch.long, device=device)
    for b, row in enumerate(rows):
        span = slice(longest - len(row), longest) if padding_side == "left" else slice(0, len(row))
        index[b, span] = row
        attention[b, span] = 1
    table = torch.cat(
        [text_embeds.reshape(num_text, dim), image_tokens.to(text_embeds.dtype), text_embeds.new_zeros(1, dim)]
    )
    is_image = (index >= num_text) & (index < pad_row)
    image_index = torch.where(is_image, index - num_text, torch.full_like(index, -1))
    kinds = torch.full(index.shape, -1, dtype=torch.int8, device=device)
    kinds[is_image] = image_kinds[image_index[is_image]]
    new_labels = None
    if labels is not None:
        label_table = torch.cat([labels.reshape(-1), labels.new_full((image_tokens.shape[0] + 1,), IGNORE_INDEX)])
        new_labels = label_table[index]
    return SpliceResult(
        inputs_embeds=table[index],
        attention_mask=attention,
        position_ids=(attention.cumsum(-1) - 1).clamp_min(0),
        labels=new_labels,
        image_token_index=image_index,
        token_kinds=kinds,
        num_truncated=truncated,
    )
