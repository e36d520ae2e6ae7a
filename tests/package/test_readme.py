"""README.md and docs/*.md stay true: every fenced python block runs, every relative link resolves (a
heading it names included), every page of docs/ is linked from the README, docs/weights.md matches the
package's pretrained configs."""
import os
import re
import subprocess
import sys

import pytest

from helpers import PROJECT_DIR
from helpers.parity import official_state_dict
from helpers.torch_writer import save_torch_legacy

README = os.path.join(PROJECT_DIR, "README.md")
DOCS = ["README.md"] + sorted(f"docs/{n}" for n in os.listdir(os.path.join(PROJECT_DIR, "docs")) if n.endswith(".md"))


def _python_blocks(path: str):
    text = open(path, encoding="utf-8").read()
    return re.findall(r"(?ms)^```python\n(.*?)^```", text)


def test_readme_has_a_python_block():
    assert _python_blocks(README), "README.md has no python block"


@pytest.mark.e2e
@pytest.mark.parametrize("doc", [d for d in DOCS if _python_blocks(os.path.join(PROJECT_DIR, d))])
def test_python_blocks_run(doc, tmp_path):
    """Each block runs as written in a fresh interpreter: in a folder holding the official file it names
    (a stand-in with the official key names) and with a weight cache holding the file ``pretrained=True``
    would download, so that no block needs the internet."""
    blocks = _python_blocks(os.path.join(PROJECT_DIR, doc))
    save_torch_legacy(official_state_dict("res2net50_v1b_26w_4s"), str(tmp_path / "res2net50_v1b_26w_4s-3cf99910.pth"))
    cache = tmp_path / "cache"
    cache.mkdir()
    save_torch_legacy(official_state_dict("res2net101_v1b_26w_4s"), str(cache / "res2net101_v1b_26w_4s-0812c246.pth"))
    env = dict(os.environ, MINDCV_RES2NET_CACHE=str(cache), PYTHONPATH=PROJECT_DIR)
    for number, block in enumerate(blocks, 1):
        proc = subprocess.run([sys.executable, "-c", block], cwd=tmp_path, env=env, capture_output=True, text=True,
                              timeout=600)
        assert proc.returncode == 0, f"{doc} python block {number} failed:\n{block}\n{proc.stderr[-3000:]}"
        assert "Traceback" not in proc.stderr and "Exception ignored" not in proc.stderr, proc.stderr[-3000:]


def _relative_links(path: str):
    text = open(path, encoding="utf-8").read()
    text = re.sub(r"(?ms)^```.*?^```", "", text)  # links inside code blocks are code, not links
    for target in re.findall(r"\]\(([^)\s]+)\)", text):
        if not re.match(r"^[a-z]+:", target):
            yield target


def _anchors(path: str) -> set:
    """The fragments GitHub gives the headings of a markdown file (code blocks hold no headings)."""
    text = re.sub(r"(?ms)^```.*?^```", "", open(path, encoding="utf-8").read())
    return {re.sub(r"[^\w\- ]", "", h.strip().lower()).replace(" ", "-") for h in re.findall(r"(?m)^#+ (.*)$", text)}


@pytest.mark.parametrize("doc", DOCS)
def test_relative_links_resolve_inside_the_repository(doc):
    path = os.path.join(PROJECT_DIR, doc)
    for target in _relative_links(path):
        file_part, _, fragment = target.partition("#")
        resolved = os.path.realpath(os.path.join(os.path.dirname(path), file_part)) if file_part else path
        if file_part:
            assert resolved.startswith(os.path.realpath(PROJECT_DIR) + os.sep), f"{doc}: {target} leaves the repository"
            assert os.path.exists(resolved), f"{doc}: {target} does not exist"
        if fragment and resolved.endswith(".md"):
            assert fragment in _anchors(resolved), f"{doc}: {target}: #{fragment} names no heading"


def test_every_docs_page_is_linked_from_the_readme():
    linked = {os.path.normpath(target.partition("#")[0]) for target in _relative_links(README)}
    assert [d for d in DOCS[1:] if d not in linked] == []


@pytest.mark.e2e
def test_weights_page_matches_the_pretrained_configs():
    proc = subprocess.run([sys.executable, "tools/maintainer/make_weights_doc.py", "--check"], cwd=PROJECT_DIR,
                          capture_output=True, text=True, timeout=300)
    assert proc.returncode == 0, proc.stderr
