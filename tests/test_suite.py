"""The test suite's own rules: ``pynative`` and ``graph`` (tests/conftest.py) switch MindSpore's execution mode for
one test and put back the mode they found, from either mode, also after the test fails, and a test that switches
the mode itself (or through train.py's main) leaves it as it found it; test files import the shared helpers as the
package ``helpers``, never from a conftest or another test file, and no test or script of a test edits sys.path;
every folder of tests says in its conftest.py what it tests."""
import ast
import os
import pathlib
import re

import mindspore as ms
from helpers import TESTS_DIR

pytest_plugins = ["pytester"]

MODES = {"graph": ms.GRAPH_MODE, "pynative": ms.PYNATIVE_MODE}


def _case(number: int, start: str, fixture: str, fails: bool = False) -> str:
    """Three tests run in order: set the ``start`` mode; in ``fixture``'s mode (then fail, if ``fails``); the
    ``start`` mode again."""
    return (f"def test_{number}_a_start_in_{start}():\n"
            f"    ms.set_context(mode=MODES[{start!r}])\n\n"
            f"def test_{number}_b_{fixture}({fixture}):\n"
            f"    assert ms.get_context('mode') == MODES[{fixture!r}]\n"
            f"    assert not {fails}\n\n"
            f"def test_{number}_c_back_in_{start}():\n"
            f"    assert ms.get_context('mode') == MODES[{start!r}]\n\n")


def _run_inner_suite(pytester, body: str):
    """``body`` as a test file run by a pytest session of its own with this suite's conftest.py (in this process:
    the mode is put back afterwards)."""
    pytester.makeconftest((pathlib.Path(__file__).parent / "conftest.py").read_text())
    pytester.makepyfile(test_modes="import mindspore as ms\nimport pytest\n\n"
                                   "MODES = {'graph': ms.GRAPH_MODE, 'pynative': ms.PYNATIVE_MODE}\n\n" + body)
    before = ms.get_context("mode")
    try:
        return pytester.runpytest_inprocess("-p", "no:cacheprovider")
    finally:
        ms.set_context(mode=before)


def test_mode_fixtures_restore_the_mode_they_found(pytester):
    """The fixtures on their own: the test file turns the guard of every test (``keep_execution_mode``) off."""
    cases = [(start, fixture) for start in MODES for fixture in MODES]
    body = ("@pytest.fixture(autouse=True)\ndef keep_execution_mode():\n    yield\n\n"
            + "".join(_case(i, start, fixture) for i, (start, fixture) in enumerate(cases))
            + _case(len(cases), "graph", "pynative", fails=True))
    result = _run_inner_suite(pytester, body)
    result.assert_outcomes(passed=3 * len(cases) + 2, failed=1)
    result.stdout.fnmatch_lines(["FAILED test_modes.py::test_4_b_pynative*"])


def test_a_test_that_switches_the_mode_leaves_it_as_it_found_it(pytester):
    result = _run_inner_suite(pytester, "def test_1_switches_to_graph():\n    ms.set_context(mode=ms.GRAPH_MODE)\n\n"
                                        "def test_2_finds_the_suites_mode():\n"
                                        "    assert ms.get_context('mode') == ms.PYNATIVE_MODE\n")
    result.assert_outcomes(passed=2)


def _test_files():
    for folder, dirs, names in os.walk(TESTS_DIR):
        dirs[:] = [d for d in dirs if d not in ("reference", "helpers", "__pycache__")]
        yield from (os.path.join(folder, n) for n in names if n.startswith("test_") and n.endswith(".py"))


def test_helpers_are_imported_as_a_package_and_no_test_edits_sys_path():
    files = list(_test_files())
    assert len(files) > 40
    offences = []
    for path in files:
        text = open(path, encoding="utf-8").read()
        for node in ast.walk(ast.parse(text)):
            names = [a.name for a in node.names] if isinstance(node, ast.Import) else \
                [node.module] if isinstance(node, ast.ImportFrom) else []
            offences += [f"{os.path.relpath(path, TESTS_DIR)}:{node.lineno} imports {n}" for n in names
                         if n == "conftest" or n.startswith("test_")]
        if re.search(r"sys\.path\.(insert|append|extend)|sys\.path\s*(=|\+=)", text):
            offences.append(f"{os.path.relpath(path, TESTS_DIR)}: edits sys.path")
    assert offences == []


def test_every_test_folder_says_what_it_tests():
    folders = {os.path.dirname(path) for path in _test_files()} - {TESTS_DIR}
    assert {os.path.basename(f) for f in folders} >= {"models", "weights", "data", "config", "train", "deploy", "cli",
                                                      "package", "benchmark"}
    for folder in sorted(folders):
        conftest = os.path.join(folder, "conftest.py")
        assert os.path.isfile(conftest), folder
        doc = ast.get_docstring(ast.parse(open(conftest, encoding="utf-8").read())) or ""
        assert doc.startswith(f"tests/{os.path.basename(folder)}: "), conftest
