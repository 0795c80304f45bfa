"""Evaluation of a fine-tuned Two-Tower model, written as the ``results.json`` the report reads
(``managertower.report``).

* VQAv2: the VQA score of the argmax on val (``val``); test questions go to ``vqa_submit_test.json`` for eval.ai
  (test-dev / test-std are scored there).
* SNLI-VE: accuracy on dev and test; NLVR2: on dev and test-P.
* Flickr30K: retrieval on the Karpathy test split: ITC similarities of every image and text, the top ``k_test`` of
  each direction reranked by the ITM "matched" logit (``objectives.rerank``), IR/TR R@1/5/10 and R_mean.

Runs on one process, with the model in eval mode and no gradients.
"""

from __future__ import annotations

import json
from pathlib import Path

import torch
from torch.utils.data import DataLoader
from tqdm import tqdm

from managertower import objectives as obj
from managertower.data.answers import VQA_VOCABULARY_FILE
from managertower.data.arrow import Task, split_patterns
from managertower.data.collate import TwoTowerCollator
from managertower.data.datasets import TwoTowerDataset
from managertower.tasks import TwoTowerForTask
from vlcommon.ledger import DATA_REPORT_KEY, write_json_atomic

RESULTS_FILE = "results.json"
# Per task: (split, the metric it gives); one home for the names the report reads.
SPLIT_METRICS = {
    Task.VQA: (("val", "val"),),
    Task.SNLI_VE: (("val", "dev"), ("test", "test")),
    Task.NLVR2: (("val", "dev"), ("test", "test_p")),
    Task.F30K: (("test", None),),
}


def _batches(dataset: TwoTowerDataset, tokenizer, batch_size: int, what: str, device: torch.device):
    loader = DataLoader(dataset, batch_size=batch_size, collate_fn=TwoTowerCollator(tokenizer=tokenizer))
    for batch in tqdm(loader, desc=what, leave=False):
        batch.pop(DATA_REPORT_KEY)
        yield {k: v.to(device) if torch.is_tensor(v) else v for k, v in batch.items()}


def _device(model: torch.nn.Module) -> torch.device:
    return next(model.parameters()).device


@torch.no_grad()
def classification(model: TwoTowerForTask, dataset: TwoTowerDataset, tokenizer, batch_size: int = 32):
    """(score sum, count, VQA test answers or None): accuracy for SNLI-VE / NLVR2, VQA score for VQAv2."""
    model.eval()
    total, count, answers = 0.0, 0, []
    for batch in _batches(dataset, tokenizer, batch_size, f"{model.task} {dataset.split}", _device(model)):
        out = model(**batch)
        if model.task is Task.VQA:
            if dataset.split == "test":
                answers += list(zip(batch["question_id"], out["logits"].argmax(dim=1).tolist(), strict=True))
                continue
            total += float(obj.vqa_score(out["logits"], out["targets"]).sum())
        else:
            total += float((out["logits"].argmax(dim=1) == out["labels"]).sum())
        count += len(batch["input_ids"])
    return total, count, answers


@torch.no_grad()
def retrieval(model: TwoTowerForTask, dataset: TwoTowerDataset, tokenizer, *, k: int, batch_size: int = 32):
    """IR/TR recalls of the Karpathy test split (one entry per caption; images de-duplicated by ``image_index``).
    On a GPU under fp16 autocast, as the original's ``amp_flag``."""
    model.eval()
    device = _device(model)
    with torch.autocast(device.type, dtype=torch.float16, enabled=device.type == "cuda"):
        return _retrieval(model, dataset, tokenizer, k=k, batch_size=batch_size, device=device)


def _retrieval(model, dataset, tokenizer, *, k: int, batch_size: int, device: torch.device):
    backbone = model.backbone
    text_stacks, masks, text_feats, image_of_text = [], [], [], []
    image_stacks, image_feats, seen = [], [], {}
    for batch in _batches(dataset, tokenizer, batch_size, "f30k embeddings", device):
        ts, vs, tt, vt = backbone.unimodal_stacks(batch["input_ids"], batch["attention_mask"], batch["pixel_values"], 1)
        t, v, _ = model.itc(tt, vt)
        text_stacks.append(ts), masks.append(batch["attention_mask"]), text_feats.append(t)
        for row, image in enumerate(batch["image_index"].tolist()):
            if image not in seen:
                seen[image] = len(seen)
                # Copies: a view would keep the whole batch's stack alive (captions outnumber images 5 to 1).
                image_stacks.append(vs[row : row + 1].clone()), image_feats.append(v[row : row + 1].clone())
            image_of_text.append(seen[image])
    text_stack, mask, texts = torch.cat(text_stacks), torch.cat(masks), torch.cat(text_feats)
    image_stack, images = torch.cat(image_stacks), torch.cat(image_feats)

    def itm(image_ids: torch.Tensor, text_ids: torch.Tensor) -> torch.Tensor:
        scores = []
        for start in range(0, len(image_ids), batch_size):
            i, t = image_ids[start : start + batch_size], text_ids[start : start + batch_size]
            cls = backbone.fuse(text_stack[t], image_stack[i], mask[t])[2]
            scores.append(model.heads["itm"](cls)[:, 1])
        return torch.cat(scores)

    scores = obj.rerank(images @ texts.T, k, itm)
    return obj.recalls(scores.float(), torch.tensor(image_of_text, device=scores.device)), len(image_of_text)


def evaluate(
    model: TwoTowerForTask,
    data_root: str | Path,
    *,
    tokenizer,
    config,
    name: str,
    seed: int,
    out: str | Path,
    k_test: int = 128,
) -> dict:
    """Every split of the task's :data:`SPLIT_METRICS`, written to ``out/results.json``; returns its content."""
    metrics, counts = {}, {}
    for split, metric in SPLIT_METRICS.get(model.task, ()):
        dataset = TwoTowerDataset(data_root, model.task, split, tokenizer=tokenizer, config=config)
        if model.task is Task.F30K:
            recalls, _ = retrieval(model, dataset, tokenizer, k=k_test)
            names = {
                "ir_r@1": "ir1",
                "ir_r@5": "ir5",
                "ir_r@10": "ir10",
                "tr_r@1": "tr1",
                "tr_r@5": "tr5",
                "tr_r@10": "tr10",
                "r_mean": "r_mean",
            }
            metrics.update({ours: round(recalls[theirs], 4) for theirs, ours in names.items()})
            continue
        total, count, _ = classification(model, dataset, tokenizer)
        metrics[metric], counts[metric] = round(100.0 * total / count, 4), count
    if model.task is Task.VQA and all(path.is_file() for _, path in split_patterns(data_root, Task.VQA, "test")):
        test = TwoTowerDataset(data_root, Task.VQA, "test", tokenizer=tokenizer, config=config)
        vocabulary = json.loads((Path(data_root) / VQA_VOCABULARY_FILE).read_text())
        _, _, answers = classification(model, test, tokenizer)
        submit = [{"question_id": int(q), "answer": vocabulary[a]} for q, a in answers]
        write_json_atomic(Path(out) / "vqa_submit_test.json", submit)
    results = {"name": name, "task": model.task.value, "metrics": metrics, "seed": seed}
    if counts:
        results["n"] = counts
    if model.task is Task.PRETRAIN:
        return results  # pre-training has no downstream metric of its own: nothing to report
    write_json_atomic(Path(out) / RESULTS_FILE, results)
    return results
