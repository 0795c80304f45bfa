"""Prepare the paper's benchmarks for machines without internet: saved data plus ``<task>_local`` task YAMLs.

On a machine with internet and the same lmms-eval version::

    python -m llava.eval.prepare_offline --out DIR [--tasks ai2d,gqa | --offline-only]

then copy DIR to the offline machine and run lmms-eval with ``--include_path DIR/tasks --tasks ai2d_local,...``.
If DIR or lmms-eval's site-packages sit at other paths there, rewrite the YAMLs in place (no download)::

    python -m llava.eval.prepare_offline --out DIR --relink

Layout: ``DIR/data/<task>`` (``DatasetDict.save_to_disk``), ``DIR/tasks/<task>_local.yaml`` and ``DIR/manifest.json``.
Each YAML includes the stock task YAML, so prompts, filters and metrics stay the stock ones (its ``!function`` tags
still resolve the stock ``utils.py``); only the data source changes. The names are new because lmms-eval's built-in
task names shadow ``--include_path`` tasks of the same name. GQA's stock ``process_docs`` downloads the
``testdev_balanced_images`` config from the hub, so its local copy gets a ``process_docs`` reading a saved copy.
"""

from __future__ import annotations

import argparse
import json
import time
from collections.abc import Callable, Iterable
from dataclasses import dataclass
from importlib.metadata import version
from pathlib import Path
from typing import Any

import yaml
from tqdm import tqdm

from llava.eval.benchmarks import LOCAL_SUFFIX

# lmms-eval's own dataset_kwargs flags, which datasets.load_dataset does not take (``token: True`` is its default).
_LMMS_ONLY_KWARGS = ("token", "load_from_disk")
# Video tasks keep their files outside the dataset (hub snapshots, YouTube), which save_to_disk would not copy.
_UNSUPPORTED_KWARGS = ("video", "From_YouTube")
_SPLIT_KEYS = ("training_split", "validation_split", "test_split", "fewshot_split")

GQA_PROCESS_DOCS = "utils.gqa_process_docs"  # the stock function that reaches the hub (gqa, gqa_lite)
GQA_IMAGES_PATH, GQA_IMAGES_CONFIG, GQA_IMAGES_SPLIT = "lmms-lab-encoder/GQA", "testdev_balanced_images", "testdev"
GQA_IMAGES_DIR = "gqa_testdev_balanced_images"  # under DIR/data, shared by every GQA-based task
GQA_UTILS = "gqa_local_utils"
_GQA_UTILS_SOURCE = f'''"""GQA's process_docs on the saved image config (written by llava.eval.prepare_offline)."""
from pathlib import Path

import datasets

# Relative to this file, so DIR keeps working when it is copied elsewhere.
IMAGES = Path(__file__).resolve().parent.parent / "data" / "{GQA_IMAGES_DIR}"


def gqa_process_docs(dataset: datasets.Dataset) -> datasets.Dataset:
    """Add each question's image (``imageId`` -> the images config's ``id``), like the stock function."""
    images = datasets.load_from_disk(str(IMAGES))["{GQA_IMAGES_SPLIT}"]
    row_of = {{image_id: row for row, image_id in enumerate(images["id"])}}  # decode images lazily, not all upfront

    def _process_doc(doc):
        return {{"image": images[row_of[doc["imageId"]]]["image"].convert("RGB")}}

    # Worker processes only pay off on the full split (12.6k questions); small copies stay in-process.
    return dataset.map(_process_doc, num_proc=8 if len(dataset) > 1000 else None)
'''

Loader = Callable[[str, str | None, str, dict], Any]  # (path, name, split, kwargs) -> datasets.Dataset


def hub_loader(path: str, name: str | None, split: str, kwargs: dict) -> Any:
    import datasets

    return datasets.load_dataset(path, name, split=split, **kwargs)


@dataclass(frozen=True)
class StockTask:
    name: str
    yaml_path: Path
    config: dict  # effective config, includes resolved; ``!function`` values left as unimported YAML nodes

    @property
    def local_name(self) -> str:
        return self.name + LOCAL_SUFFIX

    @property
    def needs_gqa_images(self) -> bool:
        return getattr(self.config.get("process_docs"), "value", None) == GQA_PROCESS_DOCS

    def source(self) -> tuple[str, str | None, dict, list[str]]:
        """``(dataset_path, dataset_name, load_dataset kwargs, splits)`` as lmms-eval would load them."""
        kwargs = dict(self.config.get("dataset_kwargs") or {})
        unsupported = [k for k in _UNSUPPORTED_KWARGS if kwargs.get(k)]
        if unsupported:
            raise ValueError(f"{self.name}: dataset_kwargs {unsupported} (video data) cannot be saved offline")
        for key in _LMMS_ONLY_KWARGS:
            kwargs.pop(key, None)
        splits = list(dict.fromkeys(self.config[k] for k in _SPLIT_KEYS if self.config.get(k)))
        if not splits:
            raise ValueError(f"{self.name}: its YAML names no split")
        return self.config["dataset_path"], self.config.get("dataset_name"), kwargs, splits


def stock_tasks(names: Iterable[str], task_manager: Any = None) -> list[StockTask]:
    """Find each task's stock YAML through lmms-eval's own index; ValueError for unknown names or groups."""
    from lmms_eval import utils
    from lmms_eval.tasks import TaskManager

    names = list(names)
    if not names:
        raise ValueError("no tasks given")
    index = (task_manager or TaskManager()).task_index
    unknown = [n for n in names if n not in index]
    if unknown:
        raise ValueError(f"unknown lmms-eval task(s) {unknown}; see `lmms-eval --tasks list`")
    not_tasks = [n for n in names if index[n]["type"] != "task"]
    if not_tasks:
        raise ValueError(f"{not_tasks} are groups or tags, not single YAML tasks; name their subtasks instead")
    # mode="simple" resolves include: chains without importing the utils modules behind !function.
    return [
        StockTask(
            n, Path(index[n]["yaml_path"]).resolve(), utils.load_yaml_config(index[n]["yaml_path"], mode="simple")
        )
        for n in names
    ]


def write_local_yaml(stock: StockTask, out: Path) -> Path:
    """Write ``out/tasks/<task>_local.yaml`` (and GQA's utils module) pointing at ``out/data/<task>``."""
    tasks_dir = out.resolve() / "tasks"
    tasks_dir.mkdir(parents=True, exist_ok=True)
    config = {
        "include": str(stock.yaml_path),
        "task": stock.local_name,
        "dataset_path": str(out.resolve() / "data" / stock.name),
        "dataset_kwargs": {"load_from_disk": True},
    }
    text = yaml.safe_dump(config, sort_keys=False)
    if stock.needs_gqa_images:
        (tasks_dir / f"{GQA_UTILS}.py").write_text(_GQA_UTILS_SOURCE)
        # safe_dump cannot write tags; this later key overrides the included stock process_docs.
        text += f"process_docs: !function {GQA_UTILS}.gqa_process_docs\n"
    path = tasks_dir / f"{stock.local_name}.yaml"
    path.write_text(text)
    return path


def _save(loader: Loader, path: str, name: str | None, kwargs: dict, splits: list[str], target: Path) -> dict:
    from datasets import DatasetDict

    data = DatasetDict({split: loader(path, name, split, kwargs) for split in splits})
    data.save_to_disk(str(target))
    return {split: len(ds) for split, ds in data.items()}


def prepare_task(stock: StockTask, out: Path, loader: Loader = hub_loader) -> dict:
    """Save one task's data, write its local YAML; return its manifest entry."""
    path, name, kwargs, splits = stock.source()
    rows = _save(loader, path, name, kwargs, splits, out / "data" / stock.name)
    entry = {
        "local_task": stock.local_name,
        "stock_yaml": str(stock.yaml_path),
        "dataset_path": path,
        "dataset_name": name,
        "rows": rows,
    }
    if stock.needs_gqa_images:
        entry["images_rows"] = _save(
            loader, GQA_IMAGES_PATH, GQA_IMAGES_CONFIG, {}, [GQA_IMAGES_SPLIT], out / "data" / GQA_IMAGES_DIR
        )
    entry["yaml"] = str(write_local_yaml(stock, out))
    return entry


def _write_manifest(out: Path, entries: dict[str, dict]) -> Path:
    manifest = out / "manifest.json"
    # Merge with earlier runs on the same DIR, so tasks can be prepared in several batches.
    tasks = json.loads(manifest.read_text())["tasks"] if manifest.exists() else {}
    tasks.update(entries)
    manifest.write_text(
        json.dumps(
            {
                "lmms_eval_version": version("lmms_eval"),
                "created": time.strftime("%Y-%m-%dT%H:%M:%S%z"),
                "include_path": str(out.resolve() / "tasks"),
                "tasks": tasks,
            },
            indent=2,
        )
    )
    return manifest


def prepare(tasks: Iterable[str], out: str | Path, loader: Loader = hub_loader, task_manager: Any = None) -> dict:
    """Prepare every task into ``out``; checks all names before downloading anything. Returns the manifest."""
    out = Path(out)
    stocks = stock_tasks(tasks, task_manager)
    manifest = out / "manifest.json"
    for stock in (bar := tqdm(stocks, desc="offline copies", unit="task")):
        bar.set_postfix_str(stock.name)
        # Recorded task by task, so a later failure (a gated dataset, a dropped connection) keeps the finished ones.
        manifest = _write_manifest(out, {stock.name: prepare_task(stock, out, loader)})
    return json.loads(manifest.read_text())


def relink(out: str | Path, task_manager: Any = None) -> list[Path]:
    """Rewrite the local YAMLs for this machine's paths (DIR and the stock YAMLs), e.g. after copying DIR."""
    out = Path(out)
    names = list(json.loads((out / "manifest.json").read_text())["tasks"])
    return [write_local_yaml(stock, out) for stock in stock_tasks(names, task_manager)]


def main(argv: list[str] | None = None) -> None:
    from llava.eval.benchmarks import BENCHMARKS, offline_tasks

    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--out", required=True, type=Path, help="folder to write data/, tasks/ and manifest.json")
    which = parser.add_mutually_exclusive_group()
    which.add_argument("--tasks", help="comma-separated lmms-eval task names (default: every benchmark's task)")
    which.add_argument("--offline-only", action="store_true", help="only the tasks scored without a GPT judge")
    which.add_argument("--relink", action="store_true", help="only rewrite the YAMLs of an already prepared DIR")
    args = parser.parse_args(argv)
    if args.relink:
        for path in relink(args.out):
            print(path)
        return
    tasks = (
        [t for t in args.tasks.split(",") if t]
        if args.tasks
        else offline_tasks()
        if args.offline_only
        else [b.task for b in BENCHMARKS]
    )
    manifest = prepare(tasks, args.out)
    local = ",".join(manifest["tasks"][t]["local_task"] for t in tasks)
    print(f"lmms-eval --include_path {manifest['include_path']} --tasks {local}")


if __name__ == "__main__":
    main()
