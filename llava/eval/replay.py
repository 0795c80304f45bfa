"""``--model llava_ov_replay``: score answers saved by an earlier ``--predict_only`` pass (the GPT-judged tasks).

The judged benchmarks (MMVet, MathVista, ImageDC, MM-LiveBench, LLaVA-W, LLaVA-Wilder) need an API key and network
at scoring time, which GPU clusters often lack. So the model runs once with ``--predict_only --log_samples``
(answers saved, no judge), and later, on a machine that can reach the judge:

    python -m llava.eval.run -- --model llava_ov_replay --model_args samples=runs/eval/ckpt/judged_predict \\
        --tasks mmvet,... --output_path runs/eval/ckpt/judged_scored

Each request gets the saved raw answer of its ``(task, doc_id)``; lmms-eval then applies the task's filters and
judge as usual. lmms-eval's own ``from_log`` model reads an older log layout, not 0.7.3's samples files.
"""

from __future__ import annotations

import json
from pathlib import Path

from lmms_eval.api.instance import Instance
from lmms_eval.api.model import lmms


def _task_of(path: Path) -> str:
    if "_samples_" not in path.name:
        raise ValueError(f"{path}: not an lmms-eval samples file (<date>_samples_<task>.jsonl)")
    return path.name.split("_samples_", 1)[1].removesuffix(".jsonl")


def _raw_answer(sample: dict, path: Path):
    # 0.7.3's samples files keep "filtered_resps" (the answer after the task's filters; the judged tasks have
    # none, so it is the raw answer); "resps" (raw) appears only in some layouts and wins when present.
    for field in ("resps", "filtered_resps"):
        answer = sample.get(field)
        while isinstance(answer, list) and len(answer) == 1:
            answer = answer[0]
        if isinstance(answer, str):
            return answer
    raise ValueError(f"{path}: doc {sample.get('doc_id')} has no single saved answer in resps/filtered_resps")


def load_answers(paths: str) -> dict[tuple[str, int], str]:
    """``(task, doc_id) -> answer`` from samples files or directories (``,``-separated); newer files win."""
    files: list[Path] = []
    for path in map(Path, paths.split(",")):
        files += sorted(path.rglob("*_samples_*.jsonl")) if path.is_dir() else [path]
    if not files:
        raise ValueError(f"no lmms-eval samples files under {paths!r} (run the predict-only pass with --log_samples)")
    answers = {}
    for path in sorted(files, key=lambda p: p.stat().st_mtime):
        task = _task_of(path)
        for line in path.read_text().splitlines():
            sample = json.loads(line)
            answers[(task, int(sample["doc_id"]))] = _raw_answer(sample, path)
    return answers


class ReplayModel(lmms):
    is_simple = True

    def __init__(self, samples: str, batch_size=1, device=None, max_batch_size=None, **unknown) -> None:
        super().__init__()
        if unknown:
            raise ValueError(f"llava_ov_replay: unknown model_args {sorted(unknown)}; it takes samples=PATH[,PATH]")
        self.answers = load_answers(samples)
        self.batch_size = int(batch_size)

    def generate_until(self, requests: list[Instance]) -> list[str]:
        out = []
        for request in requests:
            task, doc_id = request.args[4], int(request.args[3])
            if (task, doc_id) not in self.answers:
                raise ValueError(f"llava_ov_replay: no saved answer for {task} doc {doc_id}; was it predicted?")
            out.append(self.answers[(task, doc_id)])
        return out

    def loglikelihood(self, requests):
        raise NotImplementedError("llava_ov_replay replays generated answers; log-likelihood tasks cannot be replayed")

    def generate_until_multi_round(self, requests):
        raise NotImplementedError("llava_ov_replay replays single-round answers only")
