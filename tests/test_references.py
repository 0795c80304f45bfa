"""The CI check that every file reference resolves (``.ci/check_references.py``) catches what it should."""

import importlib.util
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
_spec = importlib.util.spec_from_file_location("check_references", ROOT / ".ci" / "check_references.py")
check = importlib.util.module_from_spec(_spec)
_spec.loader.exec_module(check)


def test_broken_links_and_anchors_are_named(tmp_path):
    (tmp_path / "other.md").write_text("# Other page\n\n## Its `second` part\n")
    page = tmp_path / "page.md"
    page.write_text(
        "# A heading\n[ok](#a-heading) [ok](other.md#its-second-part) [web](https://example.org/x)\n"
        "[gone](nowhere.md) [bad anchor](other.md#no-such-part) [bad local](#missing)\n"
    )
    assert check.broken_links(page) == [
        "link to nowhere.md: no such file",
        "link to other.md#no-such-part: no heading with that anchor",
        "link to #missing: no heading with that anchor",
    ]


def test_paths_into_the_tree_must_exist_and_patterns_are_skipped(tmp_path):
    source = tmp_path / "module.py"
    gone = "llava/train/" + "gone.py"  # spelled in two parts, so this file itself holds no broken reference
    source.write_text(
        f"# see llava/train/train.py and docs/training.md, not {gone}\n"
        'PATTERN = f"scripts/train/zero{stage}.json"  # built at run time\n'
        'OUTPUT = "playground/runs/report/"  # written by the demo\n'
    )
    assert check.broken_paths(source) == [f"{gone}: no such file"]


def test_the_repository_has_no_broken_reference():
    assert check.main() == 0
