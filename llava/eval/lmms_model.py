"""``--model llava_ov_manager``: our own lmms-eval model for LLaVA-OV(-Manager) checkpoints.

What it adds over the stock ``llava_onevision`` wrapper, with the same prompts (``llava.eval.prompts``) so scores
stay comparable:

* batch size > 1 with left padding and an explicit attention mask; a batch only holds requests that the stock
  wrapper would encode the same way (``llava.eval.requests``), so answers do not depend on the batch size;
* dtype and device chosen for the machine (fp32 on CPU, bf16/fp16 on GPU), images kept in the model's dtype
  instead of being forced to fp16;
* generation stops on ``<|im_end|>`` (set on the generation config by the loader) like the stock wrapper, whose
  ``until`` strings are ignored too;
* a working ``loglikelihood``; its results survive lmms-eval 0.7.3's stringification (``LoglikelihoodResult``);
* a checkpoint path or an in-memory model (``LlavaOvManager(model=..., tokenizer=...)`` for evaluation during
  training, through ``lmms_eval.evaluator.simple_evaluate``).

Under ``accelerate launch`` each process takes its share of the requests on its own GPU.
"""

from __future__ import annotations

import os

import torch
from lmms_eval.api.instance import Instance
from lmms_eval.api.model import lmms
from tqdm import tqdm

from llava.eval import requests as rq
from llava.eval.loglikelihood import LoglikelihoodResult, continuation_loss
from llava.eval.prompts import conversation
from llava.model.builder import load_pretrained_model, resolve_dtype, set_generation_defaults
from llava.processing import image_processor_for

_SAMPLING_KEYS = ("temperature", "top_p", "top_k")


def _resolve_device(device) -> torch.device:
    if device in (None, "", "auto"):
        return torch.device("cuda" if torch.cuda.is_available() else "cpu")
    return torch.device(device)


def _batch_size(value) -> int:
    try:
        size = int(value)
    except (TypeError, ValueError):
        raise ValueError(f"batch_size must be a positive integer, got {value!r} ('auto' is not supported)") from None
    if size < 1:
        raise ValueError(f"batch_size must be a positive integer, got {value!r}")
    return size


class LlavaOvManager(lmms):
    is_simple = True

    def __init__(
        self,
        pretrained: str | None = None,
        *,
        model=None,
        tokenizer=None,
        image_processor=None,
        conv_template: str = "qwen_1_5",
        device=None,
        dtype=None,
        attn_implementation: str | None = None,
        batch_size=1,
        max_batch_size=None,
        use_cache: bool = True,
        model_base: str | None = None,
        **unknown,
    ) -> None:
        super().__init__()
        if unknown:
            raise ValueError(f"llava_ov_manager: unknown model_args {sorted(unknown)}")
        if (pretrained is None) == (model is None):
            raise ValueError("llava_ov_manager needs exactly one of pretrained=PATH and an in-memory model=")
        del max_batch_size  # lmms-eval passes it; batches are fixed-size here
        self._setup_processes(device)
        if model is None:
            tokenizer, model, image_processor, _ = load_pretrained_model(
                pretrained,
                model_base,
                None,
                device_map={"": str(self._device)},
                torch_dtype=None if dtype in (None, "auto") else dtype,
                attn_implementation=attn_implementation,
            )
        else:
            if tokenizer is None:
                raise ValueError("an in-memory model needs its tokenizer=")
            if dtype not in (None, "auto") and resolve_dtype(dtype) != model.dtype:
                raise ValueError(f"dtype={dtype!r} differs from the in-memory model's {model.dtype}; cast the model")
            set_generation_defaults(model, tokenizer)
        self.image_processor = image_processor or image_processor_for(model.config)
        self.model = model.eval()
        self.tokenizer = tokenizer
        self.conv_template = conv_template
        self.batch_size = _batch_size(batch_size)
        self.use_cache = use_cache
        self._device = self.model.device

    def _setup_processes(self, device) -> None:
        if int(os.environ.get("WORLD_SIZE", "1")) > 1:
            from accelerate import Accelerator

            self.accelerator = Accelerator()
            self._rank, self._world_size = self.accelerator.process_index, self.accelerator.num_processes
            self._device = torch.device(f"cuda:{self.accelerator.local_process_index}")
        else:
            self._device = _resolve_device(device)

    @property
    def rank(self) -> int:
        return self._rank

    @property
    def world_size(self) -> int:
        return self._world_size

    @property
    def device(self) -> torch.device:
        return self._device

    @property
    def pad_token_id(self) -> int:
        pad = self.tokenizer.pad_token_id
        return pad if pad is not None else self.tokenizer.eos_token_id

    def _visuals(self, request: Instance):
        _context, _, doc_to_visual, doc_id, task, split = request.args[:6]
        return rq.load_visuals(doc_to_visual, self.task_dict[task][split][doc_id], task, doc_id)

    def _prepare(self, index: int, context: str, visuals, group: str = "") -> rq.Prepared:
        return rq.prepare(
            index,
            context,
            visuals,
            self.tokenizer,
            self.image_processor,
            self.model.config,
            template=self.conv_template,
            dtype=self.model.dtype,
            device=self.device,
            group=group,
        )

    def generate_until(self, requests: list[Instance]) -> list[str]:
        prepared = []
        for index, request in enumerate(requests):
            context, gen_kwargs, _, _, task, split = request.args[:6]
            group = f"{task}|{split}|{rq.gen_kwargs_key(gen_kwargs)}"
            prepared.append(self._prepare(index, context, self._visuals(request), group))
        answers: list[str | None] = [None] * len(requests)
        batches = rq.batches(prepared, self.batch_size)
        for batch in tqdm(batches, desc="llava_ov_manager generate", disable=self.rank != 0):
            gen_kwargs = dict(requests[batch[0].index].args[1])
            texts = self._generate(batch, gen_kwargs)
            for item, text in zip(batch, texts):
                answers[item.index] = text
                self.cache_hook.add_partial("generate_until", (requests[item.index].args[0], gen_kwargs), text)
        assert all(answer is not None for answer in answers)
        return answers

    def _generate(self, batch: list[rq.Prepared], gen_kwargs: dict) -> list[str]:
        # As the stock wrapper: `until` and `image_aspect_ratio` are dropped (generation stops on EOS), 1024 new
        # tokens unless the task says otherwise, sampling knobs removed for greedy decoding.
        gen_kwargs.pop("until", None)
        gen_kwargs.pop("image_aspect_ratio", None)
        gen_kwargs.setdefault("max_new_tokens", 1024)
        if not gen_kwargs.get("do_sample", False):
            for key in _SAMPLING_KEYS:
                gen_kwargs.pop(key, None)
        inputs = rq.collate(batch, self.pad_token_id, self.device)
        with torch.inference_mode():
            new_tokens = self.model.generate(
                **inputs, pad_token_id=self.pad_token_id, use_cache=self.use_cache, **gen_kwargs
            )
        return [text.strip() for text in self.tokenizer.batch_decode(new_tokens, skip_special_tokens=True)]

    def loglikelihood(self, requests: list[Instance]) -> list[LoglikelihoodResult]:
        """Per request ``(mean loss of the continuation, whether greedy decoding reproduces it)``.

        lmms-eval's LLaVA convention: a loss, not a log-probability (multiple choice takes the argmin).
        """
        results = []
        for request in tqdm(requests, desc="llava_ov_manager loglikelihood", disable=self.rank != 0):
            context, target, doc_to_visual, doc_id, task, split = request.args[:6]
            doc = self.task_dict[task][split][doc_id]
            continuation = target if isinstance(target, str) else target(doc)
            visuals = rq.load_visuals(doc_to_visual, doc, task, doc_id)
            prompt = conversation(context, len(visuals), self.conv_template).get_prompt()
            full = conversation(context, len(visuals), self.conv_template, answer=continuation).get_prompt()
            assert full.startswith(prompt), "the filled-in conversation must extend the open prompt"
            item = self._prepare(0, context, visuals)
            loss, greedy = continuation_loss(self.model, self.tokenizer, item, prompt, full)
            results.append(LoglikelihoodResult(loss, greedy))
        return results

    def generate_until_multi_round(self, requests) -> list[str]:
        raise NotImplementedError(
            "llava_ov_manager does not run multi-round tasks (none of the LLaVA-OV benchmarks is)"
        )
