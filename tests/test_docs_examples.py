"""The worked examples in docs/examples/ are tests: every python block runs, in order, and
the images they reference are produced."""

from __future__ import annotations

import os
import re
from pathlib import Path

import pytest

pytest.importorskip("matplotlib")

EXAMPLES = Path(__file__).resolve().parents[1] / "docs" / "examples"
BLOCK = re.compile(r"```python\n(.*?)```", re.S)
IMAGE = re.compile(r"!\[[^\]]*\]\((img/[^)]+\.png)\)")


def _pages() -> list[Path]:
    return sorted(EXAMPLES.glob("*.md"))


@pytest.mark.parametrize("page", _pages(), ids=lambda p: p.stem)
def test_worked_example_runs(page: Path, tmp_path, monkeypatch):
    text = page.read_text()
    blocks = BLOCK.findall(text)
    assert blocks, f"{page.name} has no python block"
    (tmp_path / "img").mkdir()
    monkeypatch.chdir(tmp_path)
    namespace: dict = {"__name__": "__docs__"}
    for k, block in enumerate(blocks):
        exec(compile(block, f"{page.name}[block {k + 1}]", "exec"), namespace)  # noqa: S102
    for image in IMAGE.findall(text):
        assert (tmp_path / image).stat().st_size > 1000, f"{page.name} did not draw {image}"
        assert (EXAMPLES / image).exists(), f"{image} is not committed beside {page.name}"


def test_every_example_is_in_the_site_navigation():
    nav = (EXAMPLES.parents[1] / "mkdocs.yml").read_text()
    for page in _pages():
        assert f"examples/{page.name}" in nav, f"{page.name} missing from mkdocs.yml"
    assert os.path.exists(EXAMPLES.parent / "index.md")


def test_navigation_and_index_link_existing_pages():
    docs = EXAMPLES.parent
    nav = (docs.parent / "mkdocs.yml").read_text()
    listed = re.findall(r": ([\w/]+\.md)\s*$", nav, re.M)
    assert "index.md" in listed and len(listed) > 10
    for target in listed:
        assert (docs / target).exists(), f"mkdocs.yml lists {target}, which does not exist"
    for target in re.findall(r"\]\(([\w/]+\.md)\)", (docs / "index.md").read_text()):
        assert (docs / target).exists(), f"docs/index.md links {target}, which does not exist"


def test_readme_worked_example_runs(tmp_path, monkeypatch):
    """README's end-to-end example runs as printed and writes what its comments say."""
    readme = (EXAMPLES.parents[1] / "README.md").read_text()
    section = readme.split("## A worked example, end to end", 1)[1].split("\n## ", 1)[0]
    (block,) = BLOCK.findall(section)
    monkeypatch.chdir(tmp_path)
    namespace: dict = {"__name__": "__readme__"}
    exec(compile(block, "README.md[worked example]", "exec"), namespace)  # noqa: S102
    for image in ("shrinkage.png", "schools.png"):
        assert (tmp_path / image).stat().st_size > 1000, image
    import mixedfx

    loaded = mixedfx.load(tmp_path / "slopes.mfx.json")
    assert loaded.loglik == namespace["res"].loglik
    assert list(loaded.ranef["school"].columns) == ["(Intercept)", "income"]
