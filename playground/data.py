"""The playground curriculum: synthetic images, LLaVA JSON for the three training stages, held-out lmms-eval tasks.

    python -m playground.data OUT [--seed 0] [--reduced]

writes into ``OUT`` (the ``IMAGE_FOLDER`` of the training scripts):

* ``images/<stage>/*.png``: scenes of :mod:`playground.images` (48 to 900 px, wide, square and tall);
* ``stage1.json``: plain captions (``<image>`` alone, then the caption);
* ``stage1_5.json``: detailed descriptions and text reading, multi-turn, and one-word questions on the kinds taught
  first (``FIRST_KINDS``: the background colour and the colour of the largest shape);
* ``stage2.json``: three one-word questions per image: the kinds taught first and one of the five others (equally
  often), in a random order;
* ``tasks/``: one lmms-eval task per kind of question (``playground_colour``, ..., group ``playground``) on images
  drawn from other random streams and checked to differ from every training image, with ``benchmarks.json``
  (Table-XI categories) and ``chance.json`` (task -> the accuracy a model blind to the image can reach);
* ``manifest.json``: seed, counts, chance levels and the sha256 of every other file.

The seven kinds of question need different views of the image. The background colour is in every patch (the
trivially learnable task); colour and shape of the largest shape are legible in one 56-px square of the whole
image; count and position need the whole image (a single crop of a grid does not hold it); the text token and the
colour of the tiny star are a few percent of the long side, so in a large image only a finer view resolves them.
Detail sizes follow the image (see :mod:`playground.images`) and nothing is chosen with any model variant in mind.
Training prompts and evaluation prompts are the same text:
``<image>\\n{question}\\nAnswer with one word.``
"""

from __future__ import annotations

import argparse
import hashlib
import json
import random
import shutil
from dataclasses import asdict, dataclass
from pathlib import Path

from playground.images import Scene, png_bytes, render
from playground.questions import DESCRIBE, KINDS, QUESTIONS, SUFFIX, answer, caption, describe, follow_ups, scene_for
from playground.tasks import TASKS, write_tasks

# A curriculum within the instruction data: the kinds a model from scratch learns first are taught alone in stage 1.5
# and asked in every stage-2 conversation beside one other kind. At this scale a skill asked as one kind in seven is
# never learned, and one learned first stays learned when other kinds join (docs/playground.md, "What holds the
# harder skills back"). The background is in every patch; the largest shape's colour is the next easiest.
FIRST_KINDS = ("background", "colour")


@dataclass(frozen=True, kw_only=True, slots=True)
class Counts:
    """Samples per split; the defaults make a ~15-minute demo on 2 CPU cores."""

    stage1: int = 300  # captions (stage 1 aligns the projector and managers to the frozen pre-trained LLM)
    stage1_5: int = 300  # detailed descriptions
    stage1_5_questions: int = 400  # conversations asking the kinds taught first
    stage2: int = 800  # question-answer conversations
    eval: int = 200  # documents per task: 95% intervals of about +-7 points at 50 %

    @classmethod
    def reduced(cls) -> Counts:
        """A few minutes' worth, for CI: enough conversations to learn the background and colour questions."""
        return cls(stage1=64, stage1_5=64, stage1_5_questions=128, stage2=320, eval=48)


class Writer:
    """Writes files under a root and remembers their sha256 (for the manifest and the train/eval disjointness)."""

    def __init__(self, root: Path) -> None:
        self.root, self.hashes = root, {}

    def write(self, relative: str, data: bytes) -> str:
        path = self.root / relative
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_bytes(data)
        self.hashes[relative] = hashlib.sha256(data).hexdigest()
        return self.hashes[relative]

    def json(self, relative: str, value) -> None:
        self.write(relative, (json.dumps(value, indent=1, ensure_ascii=False) + "\n").encode())


def _record(ident: str, image: str, turns: list[tuple[str, str]]) -> dict:
    conversations = []
    for human, gpt in turns:
        conversations += [{"from": "human", "value": human}, {"from": "gpt", "value": gpt}]
    return {"id": ident, "image": image, "conversations": conversations}


def _image(out: Writer, relative: str, scene: Scene) -> str:
    return out.write(relative, png_bytes(render(scene)))


def _stage1(out: Writer, rng: random.Random, count: int) -> list[dict]:
    records = []
    for i in range(count):
        scene, image = scene_for(rng, set()), f"images/stage1/{i:05d}.png"
        _image(out, image, scene)
        records.append(_record(f"stage1-{i:05d}", image, [("<image>", caption(scene))]))
    return records


def _stage1_5(out: Writer, rng: random.Random, counts: Counts) -> list[dict]:
    records = []
    for i in range(counts.stage1_5):
        scene, image = scene_for(rng, set()), f"images/stage1_5/{i:05d}.png"
        _image(out, image, scene)
        follow = follow_ups(scene)
        turns = [("<image>\n" + rng.choice(DESCRIBE), describe(scene))]
        turns += rng.sample(follow, rng.randint(1, min(2, len(follow))))
        records.append(_record(f"stage1_5-{i:05d}", image, turns))
    return records + _questions(out, rng, counts.stage1_5_questions, "stage1_5-questions", others=0)


def _questions(out: Writer, rng: random.Random, count: int, name: str, *, others: int) -> list[dict]:
    """``count`` conversations under ``images/<name>/``, each asking ``FIRST_KINDS`` and ``others`` of the other
    kinds (drawn equally often), in a random order; kinds first, then a scene that can answer them."""
    rest = [kind for kind in KINDS if kind not in FIRST_KINDS]
    records = []
    for i in range(count):
        kinds = [*FIRST_KINDS, *rng.sample(rest, others)]
        rng.shuffle(kinds)
        scene, image = scene_for(rng, set(kinds)), f"images/{name}/{i:05d}.png"
        _image(out, image, scene)
        turns = [(QUESTIONS[kind] + SUFFIX, answer(scene, kind)) for kind in kinds]
        turns[0] = ("<image>\n" + turns[0][0], turns[0][1])
        records.append(_record(f"{name}-{i:05d}", image, turns))
    return records


def _prepare(out_dir: Path) -> Path:
    """An empty output folder; a previous playground output (it has a manifest) is replaced, anything else kept."""
    out_dir.mkdir(parents=True, exist_ok=True)
    if (out_dir / "manifest.json").exists():
        for name in ("images", "tasks"):
            shutil.rmtree(out_dir / name, ignore_errors=True)
        for name in ("stage1.json", "stage1_5.json", "stage2.json", "manifest.json"):
            (out_dir / name).unlink(missing_ok=True)
    if any(out_dir.iterdir()):
        raise FileExistsError(f"{out_dir} is not empty and holds no playground output; choose an empty folder")
    return out_dir


def generate(out_dir: str | Path, *, seed: int = 0, counts: Counts = Counts()) -> dict:
    """Write the curriculum into ``out_dir``; returns the manifest. The same seed and counts give the same bytes."""
    out = Writer(_prepare(Path(out_dir)))
    streams = {stage: random.Random(f"playground:{seed}:{stage}") for stage in ("stage1", "stage1_5", "stage2")}
    out.json("stage1.json", _stage1(out, streams["stage1"], counts.stage1))
    out.json("stage1_5.json", _stage1_5(out, streams["stage1_5"], counts))
    out.json("stage2.json", _questions(out, streams["stage2"], counts.stage2, "stage2", others=1))
    train = {sha for path, sha in out.hashes.items() if path.startswith("images/")}
    chance = write_tasks(out, seed, counts.eval, train)
    manifest = {
        "seed": seed,
        "counts": asdict(counts),
        "tasks": list(TASKS.values()),
        "prompt_suffix": SUFFIX,
        "chance": chance,
        "files": dict(sorted(out.hashes.items())),
    }
    out.json("manifest.json", manifest)
    return manifest


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("out", type=Path)
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--reduced", action="store_true", help="the small counts of Counts.reduced() (tests, CI)")
    args = parser.parse_args(argv)
    manifest = generate(args.out, seed=args.seed, counts=Counts.reduced() if args.reduced else Counts())
    print(
        f"playground data (seed {args.seed}, {manifest['counts']}) written to {args.out}: "
        f"{len(manifest['files'])} files; lmms-eval tasks in {args.out / 'tasks'} (group playground)"
    )


if __name__ == "__main__":
    main()
