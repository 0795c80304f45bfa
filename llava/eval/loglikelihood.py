"""Log-likelihood of a continuation, and a result type that survives lmms-eval 0.7.3.

lmms-eval 0.7.3 passes every model output through ``unwrap_generation_output``, which turns a ``(float, bool)``
tuple into the string ``"(0.5, True)"``; multiple-choice scoring then crashes on ``zip(*results)``. Strings pass
through untouched, so ``LoglikelihoodResult`` is a ``str`` (its text is the tuple's repr, which is what the
samples log shows) that unpacks, indexes and pickles as the ``(loss, greedy)`` pair the task code expects. The
evaluator also strips reasoning tags from every string response (``result.strip()``), so ``strip`` returns the
object itself: its text never has surrounding whitespace.
"""

from __future__ import annotations

import torch
import torch.nn.functional as F
from typing_extensions import Self

from llava.constants import IMAGE_TOKEN_INDEX
from llava.eval import requests as rq
from llava.mm_utils import tokenizer_image_token


class LoglikelihoodResult(str):
    loss: float
    greedy: bool

    def __new__(cls, loss: float, greedy: bool) -> Self:
        self = super().__new__(cls, repr((float(loss), bool(greedy))))
        self.loss, self.greedy = float(loss), bool(greedy)
        return self

    def as_tuple(self) -> tuple[float, bool]:
        return self.loss, self.greedy

    def __iter__(self):
        return iter(self.as_tuple())

    def __len__(self) -> int:
        return 2

    def __getitem__(self, index):
        return self.as_tuple()[index]

    def __getnewargs__(self):
        return self.as_tuple()

    def strip(self, chars=None) -> LoglikelihoodResult:
        return self


def continuation_loss(model, tokenizer, item: rq.Prepared, prompt: str, full: str) -> tuple[float, bool]:
    """Mean cross-entropy of ``full``'s tokens after ``prompt``, and whether greedy decoding reproduces them.

    ``item`` carries the request's images. Images sit in the user turn, so the continuation is the tail of the
    expanded sequence whatever the number of image tokens: its logits are the last ``n + 1`` positions but one.
    (The stock wrapper slices the logits at un-expanded positions, which misplaces the greedy check.)
    """
    prompt_ids = tokenizer_image_token(prompt, tokenizer, IMAGE_TOKEN_INDEX, return_tensors="pt")
    full_ids = tokenizer_image_token(full, tokenizer, IMAGE_TOKEN_INDEX, return_tensors="pt")
    count = full_ids.numel() - prompt_ids.numel()
    if count <= 0:
        raise ValueError("the continuation adds no token to the prompt")
    whole = rq.Prepared(index=0, ids=full_ids, images=item.images, sizes=item.sizes, kind=item.kind)
    inputs = rq.collate([whole], pad_token_id=0, device=model.device)
    input_ids = inputs.pop("inputs")
    with torch.inference_mode():
        # Only the last count + 1 positions: full-sequence logits over a 152K vocabulary cost gigabytes.
        logits = model(input_ids=input_ids, use_cache=False, logits_to_keep=count + 1, **inputs).logits
    predicted = logits[0, :-1].float()  # (count, V)
    target = full_ids[-count:].to(predicted.device)  # (count,)
    loss = F.cross_entropy(predicted, target).item()
    greedy = bool((predicted.argmax(dim=-1) == target).all())
    return loss, greedy
