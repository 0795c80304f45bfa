"""Every reference to a file of this repository points at something that exists.

Checked: relative Markdown links (and their ``#anchors``) in ``README.md`` and ``docs/``, and every path that
starts with one of the repository's top-level folders (``llava/...``, ``docs/...``, ``scripts/...``) in Markdown,
Python, shell, TOML and text files: comments, docstrings and strings alike. A path built at run time (followed by
``{``, ``$``, ``<`` or ``*``) is a pattern, not a reference, and is skipped.

    python .ci/check_references.py        # exit status 1 and one line per broken reference
"""

from __future__ import annotations

import re
import subprocess
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
TOP_LEVEL = (
    "llava",
    "docs",
    "scripts",
    "tests",
    "bench",
    "playground",
    "managertower",
    "vlcommon",
    "constraints",
    ".ci",
)
SUFFIXES = {".md", ".py", ".sh", ".toml", ".txt", ".yaml", ".json", ""}
# Paths that are not files of this repository, each with why it is named.
NOT_OURS = {
    "playground/runs/report": "written by the demo at run time",
    "playground/runs/report/analysis": "written by the demo at run time",
    "playground/runs/managertower": "the ManagerTower demo's default work dir, written at run time",
    "scripts/train/README.md": "LLaVA-NeXT's file",
    "scripts/train/single_image.yaml": "LLaVA-NeXT's file",
    "scripts/train/pretrain_siglip.sh": "LLaVA-NeXT's script (tests/upstream/ holds a copy as users run it)",
    "scripts/train/direct_finetune_siglip_a4.sh": "LLaVA-NeXT's script (tests/upstream/ holds a copy)",
    "scripts/train/finetune_si.sh": "LLaVA-NeXT's script (tests/upstream/ holds a copy)",
}
LINK = re.compile(r"\[[^\]]*\]\(([^)\s]+)\)")
_FOLDERS = "|".join(re.escape(t) for t in TOP_LEVEL)
PATH = re.compile(rf"(?<![\w./-])((?:{_FOLDERS})/[\w./-]*[\w/])(?![\w{{$<*])")


def tracked_files() -> list[Path]:
    names = subprocess.run(["git", "ls-files"], cwd=ROOT, capture_output=True, text=True, check=True).stdout.split()
    return [ROOT / n for n in names if (ROOT / n).suffix in SUFFIXES and (ROOT / n).is_file()]


def slug(heading: str) -> str:
    """GitHub's anchor for a Markdown heading."""
    text = re.sub(r"[`*_]|\[([^\]]*)\]\([^)]*\)", r"\1", heading.strip().lower())
    return re.sub(r"[^\w\- ]", "", text).replace(" ", "-")


def anchors(markdown: Path) -> set[str]:
    return {slug(line.lstrip("#")) for line in markdown.read_text().splitlines() if re.match(r"#{1,6} ", line)}


def broken_links(markdown: Path) -> list[str]:
    found = []
    for target in LINK.findall(markdown.read_text()):
        if re.match(r"[a-z]+:", target):
            continue
        path, _, anchor = target.partition("#")
        resolved = (markdown.parent / path).resolve() if path else markdown
        if not resolved.exists():
            found.append(f"link to {target}: no such file")
        elif anchor and resolved.suffix == ".md" and anchor not in anchors(resolved):
            found.append(f"link to {target}: no heading with that anchor")
    return found


def broken_paths(file: Path) -> list[str]:
    found = []
    for path in sorted(set(PATH.findall(file.read_text(errors="replace")))):
        path = path.rstrip("/.")
        if path not in NOT_OURS and not (ROOT / path).exists():
            found.append(f"{path}: no such file")
    return found


def main() -> int:
    problems = []
    for file in tracked_files():
        name = file.relative_to(ROOT).as_posix()
        checks = broken_paths(file) + (broken_links(file) if file.suffix == ".md" else [])
        problems += [f"{name}: {problem}" for problem in checks]
    print("\n".join(problems) or f"every file reference resolves ({len(tracked_files())} files read)")
    return 1 if problems else 0


if __name__ == "__main__":
    sys.exit(main())
