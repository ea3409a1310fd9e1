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


def test_every_guide_page_is_in_the_navigation_and_the_index():
    docs = EXAMPLES.parent
    nav = (docs.parent / "mkdocs.yml").read_text()
    index = (docs / "index.md").read_text()
    for page in sorted(docs.glob("*.md")):
        if page.name == "index.md":
            continue
        assert f": {page.name}" in nav, f"docs/{page.name} missing from mkdocs.yml"
        assert f"]({page.name})" in index, f"docs/{page.name} not linked from docs/index.md"
    for target in re.findall(r": ([\w/]+\.md)\s*$", nav, re.M):
        assert (docs / target).exists(), f"mkdocs.yml lists {target}, which does not exist"
