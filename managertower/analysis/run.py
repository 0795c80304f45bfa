"""One no-grad eval pass of a ManagerTower model over a batch source, and the four files it writes.

The batch source is any iterable of dicts with ``input_ids`` (B, Lt), ``attention_mask`` (B, Lt; optional, all
ones by default) and ``pixel_values`` (B, 3, S, S): :func:`random_batches` for now, a real data loader later.
"""

from __future__ import annotations

from collections.abc import Iterable, Iterator, Mapping
from pathlib import Path

import torch

from managertower.analysis.figures import similarity_figure, weights_figure, write_similarity_csv, write_weights_csv
from managertower.analysis.similarity import SimilarityAccumulator
from managertower.analysis.weights import WeightAccumulator
from managertower.config import Fusion, ManagerTowerConfig
from managertower.model import ManagerTowerModel

FILES = ("manager_weights.csv", "manager_weights.png", "manager_similarity.csv", "manager_similarity.png")
DEFAULT_TEXT_LENGTH = 40  # the paper's captions are short (METER / BridgeTower truncate at 50 tokens)


def require_managers(model: ManagerTowerModel) -> None:
    """The analyses need managers: METER and BridgeTower have none to analyse."""
    fusion = model.config.fusion
    if fusion is not Fusion.MANAGERTOWER:
        raise ValueError(f"the manager analyses need fusion={Fusion.MANAGERTOWER!s}; this model's fusion={fusion!s} "
                         "has no managers")  # fmt: skip


def _unpack(batch: Mapping[str, torch.Tensor], device: torch.device, dtype: torch.dtype) -> tuple[torch.Tensor, ...]:
    missing = sorted({"input_ids", "pixel_values"} - set(batch))
    if missing:
        raise ValueError(f"a batch needs the keys input_ids, pixel_values (attention_mask optional); missing {missing}")
    ids = batch["input_ids"].to(device)
    mask = batch.get("attention_mask")
    mask = torch.ones_like(ids) if mask is None else mask.to(device)
    return ids, mask, batch["pixel_values"].to(device, dtype)


def analyse(model: ManagerTowerModel, batches: Iterable[Mapping[str, torch.Tensor]], out_dir: str | Path) -> dict:
    """Weights and similarities of every manager over ``batches`` in one pass (eval mode, no grad; the model's
    train/eval mode is restored after), written to ``out_dir`` as :data:`FILES`.

    Returns ``{"weights": [WeightRecord], "similarity": [SimilarityRecord], "batches": int, "samples": int,
    "files": {name: Path}}``. ``ValueError`` for a model without managers or an empty batch source."""
    require_managers(model)
    weights, similarity = WeightAccumulator.for_model(model), SimilarityAccumulator()
    parameter = next(model.parameters())
    was_training, counted, samples = model.training, 0, 0
    model.eval()  # no exploration noise, no dropout: the weights the model applies at inference
    try:
        with torch.no_grad():
            for batch in batches:
                ids, mask, pixels = _unpack(batch, parameter.device, parameter.dtype)
                managers = model(ids, mask, pixels, output_managers=True).managers
                assert managers is not None, "a managertower forward reports its managers"
                weights.update(managers, mask)
                similarity.update(managers, mask)
                counted, samples = counted + 1, samples + len(ids)
    finally:
        model.train(was_training)
    if not counted:
        raise ValueError("analyse got no batches")
    out = Path(out_dir)
    out.mkdir(parents=True, exist_ok=True)
    weight_records, similarity_records = weights.records(), similarity.records()
    files = {
        FILES[0]: write_weights_csv(out / FILES[0], weight_records),
        FILES[1]: weights_figure(out / FILES[1], weight_records),
        FILES[2]: write_similarity_csv(out / FILES[2], similarity_records),
        FILES[3]: similarity_figure(out / FILES[3], similarity_records),
    }
    return {"weights": weight_records, "similarity": similarity_records, "batches": counted, "samples": samples,
            "files": files}  # fmt: skip


def text_length_limit(config: ManagerTowerConfig) -> int:
    """The longest text RoBERTa's position table takes: positions run from ``pad_token_id + 1``."""
    return config.text.max_positions - config.text.pad_token_id - 1


def random_batches(
    config: ManagerTowerConfig, *, batches: int, batch_size: int, seed: int, text_length: int | None = None
) -> Iterator[dict[str, torch.Tensor]]:
    """Seeded random inputs of the model's sizes: ``text_length`` token ids drawn from the vocabulary without the
    pad id, each sample a random valid length in 1..text_length (padded after it with the pad id, mask 0), and
    N(0, 1) pixels at ``config.vision.image_size``. The same seed gives the same batches; bad sizes raise
    ``ValueError`` at the call, not at the first batch."""
    limit = text_length_limit(config)
    length = min(DEFAULT_TEXT_LENGTH, limit) if text_length is None else text_length
    if not 1 <= length <= limit:
        raise ValueError(f"text_length={length} must be in 1..{limit} (the text encoder's max_positions)")
    if batches < 1 or batch_size < 1:
        raise ValueError(f"batches={batches} and batch_size={batch_size} must be >= 1")
    return _draw(config, batches, batch_size, length, torch.Generator().manual_seed(seed))


def _draw(config: ManagerTowerConfig, batches: int, batch_size: int, length: int, generator: torch.Generator
          ) -> Iterator[dict[str, torch.Tensor]]:  # fmt: skip
    pad, size = config.text.pad_token_id, config.vision.image_size
    for _ in range(batches):
        ids = torch.randint(0, config.text.vocab_size - 1, (batch_size, length), generator=generator)
        ids = ids + (ids >= pad).long()  # skip the pad id: a real token never is one
        lengths = torch.randint(1, length + 1, (batch_size,), generator=generator)
        mask = (torch.arange(length)[None, :] < lengths[:, None]).long()  # (B, Lt)
        ids = ids.masked_fill(mask == 0, pad)
        yield {"input_ids": ids, "attention_mask": mask,
               "pixel_values": torch.randn(batch_size, 3, size, size, generator=generator)}  # fmt: skip
