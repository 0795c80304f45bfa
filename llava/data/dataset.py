"""Lazy supervised dataset over a LLaVA mixture: images are opened and text tokenised when a sample is drawn.

A sample (LLaVA format) is ``{"id", "image": path | [paths] (optional), "conversations": [{"from", "value"}]}``.

* Single image: processed with the model's ``image_aspect_ratio`` (``pad``, ``square``, ``anyres``,
  ``anyres_max_N``). Several images: each one ``pad`` (730 tokens), as LLaVA-OneVision trains multi-image data.
  Text-only: a dummy black crop with modality ``"text"``, so every rank runs the vision tower (ZeRO-3 needs the same
  module calls everywhere); the model never places it in the sequence.
* The one ``<image>`` of a turn is moved to the front of that turn (LLaVA-NeXT's ``preprocess_multimodal``); the
  number of ``<image>`` markers must equal the number of images.
* Truncation to ``model_max_length`` happens here, *after* image expansion (the packed length of every image is
  computed from its size without running the model): the cut never splits an image (an image that does not fit is
  dropped whole with the text after it), and a sample left with no supervised token is skipped.
* Any problem with a record raises :class:`BadSample` internally; ``__getitem__`` warns with the sample id, source
  file and reason, and returns a good stand-in instead, with the skip listed in the item (see ``__getitem__``).
"""

from __future__ import annotations

import logging
from dataclasses import dataclass
from pathlib import Path

import torch
from PIL import Image
from torch.utils.data import Dataset
from tqdm import tqdm

from llava.constants import DEFAULT_IMAGE_TOKEN, IGNORE_INDEX, IMAGE_TOKEN_INDEX
from llava.data.formatting import EmptyAnswer, Formatted, format_plain, format_qwen
from llava.data.mixture import Mixture
from llava.mm_utils import process_images
from llava.model.anyres import get_anyres_image_grid_shape
from llava.model.config import LlavaQwenConfig, MultimodalSpec
from llava.model.image_layout import packed_length
from vlcommon.images import convert_to_rgb, image_size, read_image
from vlcommon.ledger import BadSample, SkipEvent, item_or_stand_in

logger = logging.getLogger(__name__)

TEMPLATES = ("plain", "qwen_1_5", "qwen_2")
# Upstream's length heuristic for grouping: words plus a flat allowance per image sample.
IMAGE_LENGTH_ALLOWANCE = 128


@dataclass(frozen=True, kw_only=True, slots=True)
class DataConfig:
    template: str = "qwen_1_5"
    image_folder: str | None = None
    unmask_chat_tokens: bool = True  # LLaVA-NeXT's label quirk (see llava.data.formatting)
    max_length: int | None = None  # after image expansion; None = no truncation
    keep_empty_answers: bool = False  # train on empty assistant answers instead of skipping them

    def __post_init__(self) -> None:
        if self.template not in TEMPLATES:
            raise ValueError(f"version={self.template!r}: the data pipeline supports the templates {TEMPLATES}")
        if self.max_length is not None and self.max_length <= 0:
            raise ValueError(f"model_max_length={self.max_length} must be positive")


class LazySupervisedDataset(Dataset):
    def __init__(
        self, mixture: Mixture, *, tokenizer, image_processor, model_config: LlavaQwenConfig, data: DataConfig
    ) -> None:
        self.mixture = mixture
        self.tokenizer = tokenizer
        self.image_processor = image_processor
        self.model_config = model_config
        self.spec = MultimodalSpec.from_config(model_config)
        self.data = data
        self._lengths: list[int] | None = None
        self._known_bad: set[int] = set()  # per worker process; only skips the rebuild of a known-bad stand-in
        self._slots: tuple[list[int], list[bool]] | None = None  # packed rows: planned lengths, modality

    def __len__(self) -> int:
        return len(self.mixture)

    # -- lengths for the grouped sampler -------------------------------------------------------------------------

    @property
    def lengths(self) -> list[int]:
        if self._lengths is None:
            self._lengths = [_rough_length(s) for s in self.mixture.samples]
        return self._lengths

    @property
    def modality_lengths(self) -> list[int]:
        """Positive for samples with images, negative for text-only ones (LLaVA-NeXT's convention)."""
        return [n if _has_image(s) else -n for n, s in zip(self.lengths, self.mixture.samples)]

    # -- items ---------------------------------------------------------------------------------------------------

    def __getitem__(self, index: int) -> dict:
        """Record ``index``, or, when it is bad, a good stand-in (so batches keep their size).

        Only record ``index`` itself is counted as skipped: each record is drawn once an epoch, so each bad record
        counts once an epoch, whatever the stand-in search passes over. Stand-ins are drawn at random, seeded by
        ``index``, so a block of bad records does not make its next good neighbour train once for every
        bad record before it, and the choice is the same on every run (exact resume).
        """
        if self._slots is None:
            return item_or_stand_in(index, len(self), self.build, self._known_bad, self._event, logger)
        slots, text_only = self._slots

        def fits(candidate: int) -> bool:  # no longer than the slot, and of its modality (grouped rows stay pure)
            return 0 < slots[candidate] <= slots[index] and text_only[candidate] == text_only[index]

        return item_or_stand_in(index, len(self), self.build, self._known_bad, self._event, logger, fits=fits,
                                blank=self._blank)  # fmt: skip

    def fit_stand_ins(self, planned: list[int], text_only: list[bool]) -> None:
        """Packed rows (``planned``: each record's :meth:`expanded_length`, as the row planner used it): a record
        that fails only when built (an image whose header reads but whose pixels do not decode) is replaced by a
        good record of its modality no longer than its planned length, or, when none is found, by a blank item that
        trains nothing, so a row never outgrows its token budget."""
        if not len(planned) == len(text_only) == len(self):
            raise ValueError(f"planned lengths for {len(planned)} records, the dataset has {len(self)}")
        self._slots = (list(planned), list(text_only))

    def _blank(self) -> dict:
        """One unsupervised token and the text-only dummy crop: the packed row is trained without the record."""
        token = self.tokenizer.pad_token_id if self.tokenizer.pad_token_id is not None else self.tokenizer.eos_token_id
        crop = self.spec.crop_size
        return {"input_ids": torch.tensor([token]), "labels": torch.tensor([IGNORE_INDEX]),
                "images": [torch.zeros(1, 3, crop, crop)], "image_sizes": [(crop, crop)], "modalities": ["text"],
                "id": "blank", "truncated": False}  # fmt: skip

    def _event(self, index: int, bad: BadSample) -> SkipEvent:
        sample = self.mixture.samples[index]
        sample_id = sample.get("id", f"#{index}") if isinstance(sample, dict) else f"#{index}"
        return SkipEvent(
            sample_id=str(sample_id), source=str(self.mixture.source_of(index).path), kind=bad.kind, reason=str(bad)
        )

    def _formatted(self, index: int) -> tuple[list[str], Formatted]:
        """Record ``index``'s image paths and its tokenised conversation; :class:`BadSample` if it cannot be used."""
        sample = self.mixture.samples[index]
        if not isinstance(sample, dict):
            raise BadSample("malformed", f"sample: expected an object, got {type(sample).__name__}")
        if "video" in sample:
            raise BadSample("unsupported", "video: video samples are not supported (single- and multi-image only)")
        paths = _image_paths(sample)
        conversations = _move_image_markers(sample.get("conversations"), len(paths))
        try:
            if self.data.template == "plain":
                formatted = format_plain(conversations, self.tokenizer, keep_empty_answers=self.data.keep_empty_answers)
            else:
                formatted = format_qwen(
                    conversations,
                    self.tokenizer,
                    unmask_chat_tokens=self.data.unmask_chat_tokens,
                    keep_empty_answers=self.data.keep_empty_answers,
                )
        except EmptyAnswer as error:
            raise BadSample("empty_answer", str(error)) from error
        except ValueError as error:
            raise BadSample("conversation", str(error)) from error
        placeholders = formatted.input_ids.count(IMAGE_TOKEN_INDEX)
        if placeholders != len(paths):
            raise BadSample(
                "image_count",
                f"image: the sample has {len(paths)} image(s) but its text has "
                f"{placeholders} {DEFAULT_IMAGE_TOKEN} marker(s)",
            )
        return paths, formatted

    def expanded_length(self, index: int) -> int:
        """Tokens record ``index`` becomes after image expansion and truncation, from the image files' headers (no
        pixel is decoded): what a packed row's token budget counts. An upper bound of the built item's length
        (truncation drops a whole image); :class:`BadSample` as :meth:`build` would raise it for the image files."""
        paths, formatted = self._formatted(index)
        folder = self.mixture.source_of(index).image_folder or self.data.image_folder
        sizes = [_image_size(path, folder) for path in paths]
        spec = self.spec
        single_anyres = len(sizes) == 1 and spec.aspect_ratio.is_anyres
        image_tokens = 0
        for size in sizes:
            crops = 1
            if single_anyres:
                grid_w, grid_h = get_anyres_image_grid_shape(size, spec.grid_pinpoints, spec.crop_size)
                crops = 1 + grid_w * grid_h
            image_tokens += packed_length(spec, crops, size)
        total = len(formatted.input_ids) - len(sizes) + image_tokens
        return min(total, self.data.max_length) if self.data.max_length is not None else total

    def packing_lengths(self, *, progress: bool = False) -> tuple[list[int], list[bool], list[SkipEvent]]:
        """Every record's :meth:`expanded_length` (0 for a record found bad: it is left out of the plan, and its
        event is returned to be counted once), and whether it is text-only."""
        lengths, issues = [], []
        for index in tqdm(range(len(self)), desc="packing: sample lengths", disable=not progress, mininterval=5):
            try:
                lengths.append(self.expanded_length(index))
            except BadSample as bad:
                lengths.append(0)
                issues.append(self._event(index, bad))
        return lengths, [not _has_image(s) for s in self.mixture.samples], issues

    def build(self, index: int) -> dict:
        """The training item of record ``index``; raises :class:`BadSample` for a record that cannot be used."""
        paths, formatted = self._formatted(index)
        folder = self.mixture.source_of(index).image_folder or self.data.image_folder
        images = [_open_image(path, folder) for path in paths]
        crops = self._process(images)
        sizes = [image.size for image in images]
        input_ids, labels, kept, truncated = self._truncate(formatted, crops, sizes)
        crops, sizes = crops[:kept], sizes[:kept]
        modalities = ["image"] * kept
        if not crops:
            crop = self.spec.crop_size
            crops, sizes, modalities = [torch.zeros(1, 3, crop, crop)], [(crop, crop)], ["text"]
        return {
            "input_ids": torch.tensor(input_ids, dtype=torch.long),
            "labels": torch.tensor(labels, dtype=torch.long),
            "images": crops,
            "image_sizes": sizes,
            "modalities": modalities,
            "id": str(self.mixture.samples[index].get("id", f"#{index}")),
            "truncated": truncated,
        }

    def _process(self, images: list[Image.Image]) -> list[torch.Tensor]:
        """Per image ``(P, 3, S, S)``: the model's aspect-ratio mode for one image, ``pad`` for several."""
        if not images:
            return []
        if len(images) == 1:
            processed = process_images(images, self.image_processor, self.model_config)
            crops = processed[0]
            return [crops.unsqueeze(0) if crops.dim() == 3 else crops]
        return [
            process_images([image], self.image_processor, self.model_config, image_aspect_ratio="pad")[0].unsqueeze(0)
            for image in images
        ]

    def _truncate(self, formatted: Formatted, crops, sizes):
        """Cut to ``max_length`` after image expansion without splitting an image (see module docstring)."""
        input_ids, labels = formatted.input_ids, formatted.labels
        max_length = self.data.max_length
        expanded = [packed_length(self.spec, crops[k].shape[0], sizes[k]) for k in range(len(crops))]
        images_seen, total, keep = 0, 0, len(input_ids)
        for position, token in enumerate(input_ids):
            width = expanded[images_seen] if token == IMAGE_TOKEN_INDEX else 1
            if max_length is not None and total + width > max_length:
                keep = position
                break
            total += width
            images_seen += token == IMAGE_TOKEN_INDEX
        truncated = keep < len(input_ids)
        full = sum(expanded) + len(input_ids) - len(expanded)
        input_ids, labels = input_ids[:keep], labels[:keep]
        # The answers' own tokens: LLaVA-NeXT's unmasked chat tokens of the system and user turns would otherwise
        # let a sample cut before its first answer train on template tokens alone.
        if not any(formatted.answer[:keep]):
            detail = f" after truncation to {max_length} tokens" if truncated else ""
            raise BadSample(
                "no_supervised_tokens",
                f"conversations: no answer token left{detail} ({full} tokens after image expansion)",
            )
        return input_ids, labels, input_ids.count(IMAGE_TOKEN_INDEX), truncated


def _has_image(sample) -> bool:
    return isinstance(sample, dict) and bool(sample.get("image"))


def _rough_length(sample) -> int:
    if not isinstance(sample, dict) or not isinstance(sample.get("conversations"), list):
        return 1
    words = sum(len(str(turn.get("value", "")).split()) for turn in sample["conversations"] if isinstance(turn, dict))
    return max(1, words + (IMAGE_LENGTH_ALLOWANCE if _has_image(sample) else 0))


def _image_paths(sample: dict) -> list[str]:
    image = sample.get("image")
    if image is None:
        return []
    if isinstance(image, str) and image:
        return [image]
    if isinstance(image, list) and image and all(isinstance(p, str) and p for p in image):
        return list(image)
    raise BadSample("malformed", f"image: expected a path or a non-empty list of paths, got {image!r}")


def _move_image_markers(conversations, num_images: int):
    """LLaVA-NeXT's ``preprocess_multimodal``: a turn's single ``<image>`` goes to its front, followed by a newline."""
    if not isinstance(conversations, list) or not num_images:
        return conversations
    moved = []
    for turn in conversations:
        value = turn.get("value") if isinstance(turn, dict) else None
        if (
            isinstance(value, str)
            and value.count(DEFAULT_IMAGE_TOKEN) == 1
            and not value.startswith(DEFAULT_IMAGE_TOKEN)
        ):
            value = (DEFAULT_IMAGE_TOKEN + "\n" + value.replace(DEFAULT_IMAGE_TOKEN, "").strip()).strip()
            turn = {**turn, "value": value}
        moved.append(turn)
    return moved


def _image_size(path: str, folder: str | None) -> tuple[int, int]:
    """(width, height) from the file's header (no pixel is decoded)."""
    return image_size(Path(folder) / path if folder is not None else Path(path))


def _open_image(path: str, folder: str | None) -> Image.Image:
    """Decoded in full and in RGB (16-bit and float grey scaled, not clipped)."""
    return convert_to_rgb(read_image(Path(folder) / path if folder is not None else Path(path)))
