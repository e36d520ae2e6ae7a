"""README.md and docs/*.md stay true: every fenced python block runs, every relative link resolves (a
heading it names included), every page of docs/ is linked from the README, docs/weights.md matches the
package's pretrained configs, the Quick start tests the fast subset while CI runs the README's full-suite
command, the README's example commands make the files they use, and the docs carry no bookkeeping."""
import os
import re
import shlex
import subprocess
import sys

import pytest

from helpers import PROJECT_DIR
from helpers.parity import official_state_dict
from helpers.programs import load_script, tool_main
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


def _readme() -> str:
    return open(README, encoding="utf-8").read()


def _section(text: str, heading: str) -> str:
    return text.split(f"\n{heading}\n", 1)[1].split("\n## ", 1)[0]


def test_quick_start_tests_the_fast_subset_and_ci_runs_the_full_suite():
    """The Quick start: the venv line first, the install, the training run, then the fast subset, with the
    Testing section's full-suite command named under it; that command (pytest without -m) is what CI runs."""
    text = _readme()
    commands = load_script(".ci/quickstart.py").commands(text)
    assert commands["venv"] == "python3.11 -m venv .venv && . .venv/bin/activate"
    assert commands["train"] == "python train.py -c configs/res2net/res2net50_digits_cpu.yaml"
    assert commands["full_suite"].split("#")[0].split() == ["python", "-m", "pytest", "-q", "-n", "2"]
    assert commands["fast_tests"] == 'python -m pytest -q -n 2 -m "not e2e"'
    assert commands["fast_tests"] in _section(text, "## Testing")
    quick_start = _section(text, "## Quick start")
    assert "`python -m pytest -q -n 2`" in quick_start.split("```", 3)[2]  # named under the block


@pytest.mark.e2e
def test_ci_runs_the_readme_quick_start_set_up_and_full_suite():
    proc = subprocess.run(["bash", ".ci/run", "--print"], cwd=PROJECT_DIR, capture_output=True, text=True, timeout=60)
    assert proc.returncode == 0, proc.stderr
    commands = load_script(".ci/quickstart.py").commands(_readme())
    assert proc.stdout.splitlines() == [commands["venv"], commands["install"], commands["full_suite"]]


def test_quickstart_reader_refuses_a_readme_without_the_commands_ci_runs():
    quickstart = load_script(".ci/quickstart.py")
    text = _readme()
    with pytest.raises(quickstart.ReadmeError, match="the Quick start block must hold 4 commands"):
        quickstart.commands(text.replace("python train.py -c configs/res2net/res2net50_digits_cpu.yaml\n", "", 1))
    testing = _section(text, "## Testing")
    full = testing.split("```bash\n", 1)[1].splitlines()[0]
    with pytest.raises(quickstart.ReadmeError, match="the Testing block must start with the full suite"):
        quickstart.commands(text.replace(full, 'python -m pytest -q -m "not e2e"', 1))


def _commands_block_line(program: str) -> list:
    """The README's example call of ``program`` (``tools/predict.py``), split as the shell splits it."""
    lines = [line for line in _readme().splitlines() if line.startswith(f"python {program} ")]
    assert lines, f"README.md has no example of {program}"
    return shlex.split(lines[0], comments=True)[2:]


def test_readme_digit_scans_make_the_images_its_predict_example_reads(tmp_path, monkeypatch, capsys):
    """The README's make_digit_scans call, run as written, writes the folder that its predict example names."""
    monkeypatch.chdir(tmp_path)
    argv = _commands_block_line("tools/make_digit_scans.py")
    assert tool_main("make_digit_scans")(argv) == 0
    predicted = [arg for arg in _commands_block_line("tools/predict.py") if not arg.startswith("-") and arg != "RUN"
                 and not arg.isdigit()]
    assert predicted and all(os.path.exists(path) for path in predicted)
    assert len([n for n in os.listdir(predicted[0]) if n.endswith(".png")]) == 10


def test_readme_gives_no_dated_timings_and_the_docs_no_bookkeeping():
    """Dated measurements belong in docs/benchmark.md; no page tells how the docs were made."""
    assert re.findall(r"\b20\d\d-\d\d-\d\d\b", _readme()) == []
    phrases = ("target not reached", "targets not reached", "targets hold", "before this change", "ours before",
               "round 3", "as before", "target missed", "targets missed")
    for doc in DOCS:
        text = " ".join(open(os.path.join(PROJECT_DIR, doc), encoding="utf-8").read().lower().split())
        assert [p for p in phrases if p in text] == [], doc


def _bash_lines(path: str) -> list:
    text = open(path, encoding="utf-8").read()
    return [line for block in re.findall(r"(?ms)^```bash\n(.*?)^```", text) for line in block.splitlines()]


@pytest.mark.parametrize("doc", [d for d in DOCS if _bash_lines(os.path.join(PROJECT_DIR, d))])
def test_the_scripts_and_recipes_the_commands_name_exist(doc):
    """A ``python X.py`` of the project or a ``configs/...yaml`` recipe in a bash block is a file of the clone."""
    missing = []
    for line in _bash_lines(os.path.join(PROJECT_DIR, doc)):
        command = line.split(" #", 1)[0]
        scripts = re.findall(r"(?:^|\s)python ((?:tools/|examples/)?[\w/]+\.py)\b", command)
        recipes = re.findall(r"\bconfigs/res2net/[\w.-]+\.yaml\b", command)
        missing += [path for path in scripts + recipes if not os.path.isfile(os.path.join(PROJECT_DIR, path))]
    assert missing == [], doc
