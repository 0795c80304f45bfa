"""What both systems' stage scripts do before training starts, in one tested place.

A stage script is strict mode, its documentation and ``exec python -m <system>.train.launch <recipe> "$@"``. The
launcher (``llava.train.launch``, ``managertower.train.launch``) is the boundary where the environment the scripts
document is read, once, into typed values, with these helpers:

* :class:`Device`: what this machine has (CUDA devices, compute capability, bf16), probed once;
* :class:`Nodes`: processes per node and the node layout (``NUM_GPUS``, ``NNODES``, ``NODE_RANK``/``RANK``,
  ``MASTER_ADDR``, ``MASTER_PORT``), checked before anything starts;
* :class:`Machine`: precision, attention, DeepSpeed, compilation, logging and dataloader workers, ``auto`` values
  resolved against the :class:`Device`;
* :func:`torchrun_command` and :func:`run`: the launch, its output teed into the run's log file.

Every problem is a :class:`LaunchError` naming the variable; :func:`run_launcher` prints it as one line.
"""

from __future__ import annotations

import importlib.util
import json
import os
import re
import subprocess
import sys
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from pathlib import Path

from vlcommon import runconfig
from vlcommon.enums import StrEnum

Env = Mapping[str, str]
# Weights in formats the train entries never read: not worth the download.
SKIPPED_HUB_FILES = ("*.msgpack", "*.h5", "*.onnx", "*.ot", "onnx/*", "flax_model*", "tf_model*", "openvino/*")
_HUB_ID = re.compile(r"^[A-Za-z0-9][A-Za-z0-9_.-]*/[A-Za-z0-9_.-]+$")


class LaunchError(ValueError):
    """A variable of the scripts' environment that cannot be used: the message names it."""


def require(env: Env, name: str, hint: str) -> str:
    """``env[name]``, which must be set and non-empty; ``hint`` says what it should hold."""
    value = env.get(name, "")
    if not value:
        raise LaunchError(f"{name} is not set: {hint}")
    return value


def env_int(env: Env, name: str, default: int | None = None, *, minimum: int = 0) -> int:
    """An integer variable (``default`` when unset or empty)."""
    value = env.get(name) or (None if default is None else str(default))
    if value is None:
        raise LaunchError(f"{name} is not set")
    if not value.isdigit() or int(value) < minimum:
        raise LaunchError(f"{name}={value} must be an integer >= {minimum}")
    return int(value)


def env_float(env: Env, name: str, default: float) -> float:
    value = env.get(name)
    if not value:
        return default
    try:
        return float(value)
    except ValueError:
        raise LaunchError(f"{name}={value} must be a number (e.g. 1e-5)") from None


def env_choice(env: Env, name: str, enum_cls: type[StrEnum], default: StrEnum) -> StrEnum:
    value = env.get(name) or default.value
    try:
        return enum_cls(value)
    except ValueError:
        raise LaunchError(f"{name}={value}: expected one of {', '.join(m.value for m in enum_cls)}") from None


def env_switch(env: Env, name: str, default: bool = False) -> bool:
    """A 0/1 variable."""
    value = env.get(name) or str(int(default))
    if value not in ("0", "1"):
        raise LaunchError(f"{name}={value}: expected 0 or 1")
    return value == "1"


@dataclass(frozen=True, kw_only=True, slots=True)
class Device:
    cuda_count: int
    cuda_major: int  # compute capability of device 0 (0 without CUDA)
    bf16: bool

    @classmethod
    def probe(cls) -> Device:
        import torch

        count = torch.cuda.device_count() if torch.cuda.is_available() else 0
        major = torch.cuda.get_device_capability(0)[0] if count else 0
        return cls(cuda_count=count, cuda_major=major, bf16=count > 0 and torch.cuda.is_bf16_supported())


@dataclass(frozen=True, kw_only=True, slots=True)
class Nodes:
    processes: int  # per node
    nnodes: int
    node_rank: int
    master_addr: str
    master_port: int

    @property
    def world_size(self) -> int:
        return self.processes * self.nnodes

    @classmethod
    def from_env(cls, env: Env, device: Device) -> Nodes:
        if not env.get("NUM_GPUS") and device.cuda_count == 0:
            raise LaunchError(
                "NUM_GPUS is not set and no CUDA device is visible: set NUM_GPUS to the number of processes per "
                "node (CPU runs use gloo)"
            )
        processes = env_int(env, "NUM_GPUS", device.cuda_count, minimum=1)
        nnodes = env_int(env, "NNODES", 1, minimum=1)
        rank = env.get("NODE_RANK") or env.get("RANK") or ""
        if nnodes > 1:
            hint = f"this node's index in 0..{nnodes - 1} (NODE_RANK, or RANK), different on every node"
            rank = require({"NODE_RANK": rank}, "NODE_RANK", hint)
            require(env, "MASTER_ADDR", "the address of node 0, reachable from every node")
            require(env, "MASTER_PORT", "a free TCP port on node 0, the same on every node")
        node_rank = env_int({"NODE_RANK": rank}, "NODE_RANK", 0)
        if node_rank >= nnodes:
            raise LaunchError(f"NODE_RANK={node_rank} must be below NNODES={nnodes}")
        return cls(processes=processes, nnodes=nnodes, node_rank=node_rank,
                   master_addr=env.get("MASTER_ADDR") or "127.0.0.1",
                   master_port=env_int(env, "MASTER_PORT", 29500))  # fmt: skip


class Precision(StrEnum):
    AUTO = "auto"  # bf16 on a GPU that supports it, else fp16; fp32 on a CPU
    BF16 = "bf16"
    FP16 = "fp16"
    FP32 = "fp32"


class Attention(StrEnum):
    AUTO = "auto"  # flash_attention_2 with CUDA, sdpa without
    FLASH_ATTENTION_2 = "flash_attention_2"
    SDPA = "sdpa"
    EAGER = "eager"


@dataclass(frozen=True, kw_only=True, slots=True)
class Machine:
    """This machine's training settings, ``auto`` resolved: what every stage of a run shares."""

    precision: Precision
    tf32: bool  # TF32 matmuls: Ampere (compute capability 8) on; transformers refuses the flag elsewhere
    attention: Attention
    deepspeed: str | None  # a DeepSpeed config file
    compile_backend: str | None  # torch.compile backend, None: no compilation
    report_to: tuple[str, ...]
    num_workers: int

    def training_arguments(self) -> dict:
        """The values of ``transformers.TrainingArguments`` fields these settings stand for."""
        values = {
            "bf16": self.precision is Precision.BF16,
            "fp16": self.precision is Precision.FP16,
            "deepspeed": self.deepspeed,
            "report_to": list(self.report_to),
            "dataloader_num_workers": self.num_workers,
            "torch_compile": self.compile_backend is not None,
        }
        if self.tf32:
            values["tf32"] = True
        if self.compile_backend is not None:
            values["torch_compile_backend"] = self.compile_backend
        return values

    @classmethod
    def from_env(cls, env: Env, device: Device, *, deepspeed: Path | None, num_workers: int,
                 attention: bool = True) -> Machine:  # fmt: skip
        """``PRECISION``, ``ATTN`` (when the system has a choice), ``DEEPSPEED`` (a file, or ``none``; default
        ``deepspeed``), ``COMPILE``/``COMPILE_BACKEND``, ``REPORT_TO`` and ``NUM_WORKERS``, checked."""
        precision = env_choice(env, "PRECISION", Precision, Precision.AUTO)
        if precision is Precision.AUTO:
            precision = Precision.FP32 if not device.cuda_count else Precision.BF16 if device.bf16 else Precision.FP16
        chosen = env_choice(env, "ATTN", Attention, Attention.AUTO) if attention else Attention.AUTO
        if chosen is Attention.AUTO:
            # Without flash-attn installed, the LLaVA train entry falls back to sdpa with a warning.
            chosen = Attention.FLASH_ATTENTION_2 if device.cuda_count else Attention.SDPA
        report_to = tuple(p for p in (env.get("REPORT_TO") or "wandb").split(",") if p)
        if "wandb" in report_to and not _importable("wandb"):
            raise LaunchError(f"REPORT_TO={','.join(report_to)} but wandb is not installed (or REPORT_TO=none)")
        return cls(precision=precision, tf32=device.cuda_count > 0 and device.cuda_major >= 8, attention=chosen,
                   deepspeed=_deepspeed_file(env, deepspeed), report_to=report_to,
                   compile_backend=(env.get("COMPILE_BACKEND") or "inductor") if env_switch(env, "COMPILE") else None,
                   num_workers=env_int(env, "NUM_WORKERS", num_workers))  # fmt: skip


def _deepspeed_file(env: Env, default: Path | None) -> str | None:
    value = env.get("DEEPSPEED") or (str(default) if default else "none")
    if value == "none":
        return None
    if not Path(value).is_file():
        raise LaunchError(f"DEEPSPEED={value}: no such file (or set DEEPSPEED=none)")
    if not _importable("deepspeed"):
        raise LaunchError(f"DEEPSPEED={value} but deepspeed is not installed (pip install -e '.[train]', or none)")
    return str(Path(value).resolve())


def _importable(name: str) -> bool:
    return importlib.util.find_spec(name) is not None


def model_dir(env: Env, name: str, hint: str) -> str:
    """A model the variable ``name`` names: a local folder with a ``config.json`` as it is, or a Hugging Face hub
    id (``org/name``) as the local snapshot in the hub cache (downloaded when allowed; ``HF_HUB_OFFLINE=1``: only
    the cache). The train entries read configs and weights from local folders only."""
    value = require(env, name, hint)
    if (Path(value) / "config.json").is_file():
        return value
    if Path(value).exists() or not _HUB_ID.match(value):
        raise LaunchError(f"{name}={value} is neither a local model directory (no config.json) nor a hub id: {hint}")
    from huggingface_hub import snapshot_download

    try:
        path = snapshot_download(value, ignore_patterns=list(SKIPPED_HUB_FILES))
    except Exception as error:  # noqa: BLE001 (offline, unknown id, no access: all say the same to the user)
        raise LaunchError(
            f"{name}={value}: neither in the Hugging Face cache nor downloadable ({type(error).__name__}: {error}); "
            f"download it and set {name} to the local directory"
        ) from None
    if not (Path(path) / "config.json").is_file():
        raise LaunchError(f"{name}={value}: the snapshot {path} has no config.json")
    return path


def torchrun_command(nodes: Nodes, module: str, args: list[str]) -> list[str]:
    return [sys.executable, "-m", "torch.distributed.run", f"--nproc_per_node={nodes.processes}",
            f"--nnodes={nodes.nnodes}", f"--node_rank={nodes.node_rank}", f"--master_addr={nodes.master_addr}",
            f"--master_port={nodes.master_port}", "-m", module, *args]  # fmt: skip


def run(command: list[str], *, log: Path, env: Mapping[str, str]) -> int:
    """Run ``command`` with ``env`` added to this process's environment, its output (stdout and stderr, unbuffered)
    on this process's stdout and appended to ``log``; returns its exit status."""
    log.parent.mkdir(parents=True, exist_ok=True)
    with (
        open(log, "ab") as sink,
        subprocess.Popen(
            command,
            env={**os.environ, "PYTHONUNBUFFERED": "1", **env},
            stdout=subprocess.PIPE,
            stderr=subprocess.STDOUT,
        ) as process,
    ):
        assert process.stdout is not None
        for line in process.stdout:
            sys.stdout.buffer.write(line)
            sys.stdout.flush()
            sink.write(line)
    return process.returncode


def start_run(
    env: Env, nodes: Nodes, *, module: str, config, output: Path, args: list[str], project: str,
    notes: list[str], note: Callable[[str], None], extra_env: Mapping[str, str] | None = None,
) -> int:  # fmt: skip
    """Run the train entry ``module`` under ``torchrun`` with ``--run_config <output>/run_config.json`` (``config``,
    written first) and ``args``; its output teed to ``<output>/train_node<rank>.log``, wandb offline in ``output``
    unless the environment says otherwise. ``DRY_RUN=1`` prints the run config (JSON) and the command, one argument
    per line, and writes nothing. Returns the exit status."""
    config_file = output / "run_config.json"
    command = torchrun_command(nodes, module, ["--run_config", str(config_file), *args])
    if env_switch(env, "DRY_RUN"):
        print(json.dumps(runconfig.to_dict(config), indent=2))
        print("\n".join(command))
        return 0
    runconfig.write(config_file, config)
    for line in [*notes, f"output: {output} (run config: {config_file})", "command: " + " ".join(command)]:
        note(line)
    wandb = {"WANDB_MODE": env.get("WANDB_MODE") or "offline", "WANDB_PROJECT": env.get("WANDB_PROJECT") or project,
             "WANDB_DIR": env.get("WANDB_DIR") or str(output)}  # fmt: skip
    return run(command, log=output / f"train_node{nodes.node_rank}.log", env={**wandb, **(extra_env or {})})


def run_launcher(main: Callable[[], int], *, program: str) -> None:
    """``main()`` of a launcher: its exit status, or a :class:`LaunchError` (``ValueError``) as one line, status 1."""
    try:
        status = main()
    except ValueError as error:
        print(f"[{program}] error: {error}", file=sys.stderr, flush=True)
        sys.exit(1)
    sys.exit(status)
