"""Checks the stage scripts run before launching: ``python -m llava.train.preflight {probe|snapshot ID}``.

* ``probe`` prints one line for the shell to read: ``CUDA_COUNT CUDA_MAJOR CUDA_BF16 HAS_LLAVA HAS_DEEPSPEED
  HAS_WANDB`` (device count, compute capability of device 0, bf16 support, and which packages import).
* ``snapshot ID`` prints the local directory of a Hugging Face hub model (from the cache, or downloaded into it;
  with ``HF_HUB_OFFLINE=1`` only the cache is consulted); exit status 1 with the reason on stderr when neither works.
"""

from __future__ import annotations

import argparse
import importlib.util
import sys

# Weights in formats the train entry never reads: not worth the download.
SKIPPED_FILES = ("*.msgpack", "*.h5", "*.onnx", "*.ot", "onnx/*", "flax_model*", "tf_model*", "openvino/*")


def probe() -> list[int]:
    import torch

    count = torch.cuda.device_count() if torch.cuda.is_available() else 0
    major = torch.cuda.get_device_capability(0)[0] if count else 0
    bf16 = int(count > 0 and torch.cuda.is_bf16_supported())
    found = [int(importlib.util.find_spec(name) is not None) for name in ("llava", "deepspeed", "wandb")]
    return [count, major, bf16, *found]


def snapshot(repo_id: str) -> str:
    from huggingface_hub import snapshot_download

    return snapshot_download(repo_id, ignore_patterns=list(SKIPPED_FILES))


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m llava.train.preflight", description=__doc__.splitlines()[0])
    jobs = parser.add_subparsers(dest="job", required=True)
    jobs.add_parser("probe", help="device and package probe, one line")
    hub = jobs.add_parser("snapshot", help="local directory of a hub model")
    hub.add_argument("repo_id")
    args = parser.parse_args(argv)
    if args.job == "probe":
        print(*probe())
        return 0
    try:
        print(snapshot(args.repo_id))
    except Exception as error:  # noqa: BLE001 (offline, unknown id, no access: the script names the variable)
        print(f"{args.repo_id}: {type(error).__name__}: {error}", file=sys.stderr)
        return 1
    return 0


if __name__ == "__main__":
    sys.exit(main())
