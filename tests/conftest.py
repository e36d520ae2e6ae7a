"""Fixtures of every test folder: the CPU device, MindSpore's execution mode (PyNative unless a test asks for
``graph``; each test leaves the mode as it found it), a tiny registered network, and the suite's disk check.

The tests are grouped by the room of the package they test (tests/models, tests/weights, ... see README,
Testing); helpers shared between folders are the package ``helpers`` (tests/helpers), imported normally."""
import os
import shutil
import tempfile

import pytest

import mindcv_res2net  # noqa: F401  (sets ONEDNN_MAX_CPU_ISA before mindspore loads)
import mindspore as ms
from helpers import tiny_net

ms.set_device("CPU")
ms.set_context(mode=ms.PYNATIVE_MODE)  # the suite's mode: a test that needs Graph mode asks for it (``graph``)

# Peak disk use of a passing `-n 2` run, measured at 1.7 GB (checkpoints of 100-380 MB each; passing tests
# delete their tmp_path at once, see pyproject.toml). A full disk otherwise surfaces as pytest INTERNALERRORs.
REQUIRED_FREE_BYTES = int(2.5e9)


def pytest_sessionstart(session):
    folder = os.path.abspath(session.config.option.basetemp or tempfile.gettempdir())
    while not os.path.isdir(folder):
        folder = os.path.dirname(folder)
    free = shutil.disk_usage(folder).free
    if free < REQUIRED_FREE_BYTES:
        pytest.exit(f"tests: only {free / 1e9:.2f} GB free in {folder}; the suite needs about "
                    f"{REQUIRED_FREE_BYTES / 1e9:.1f} GB there (free space, or pass --basetemp DIR)", returncode=1)


def _in_mode(mode):
    """Run the test in MindSpore execution ``mode``; the mode it found is restored afterwards."""
    before = ms.get_context("mode")
    ms.set_context(mode=mode)
    try:
        yield
    finally:
        ms.set_context(mode=before)


@pytest.fixture(autouse=True)
def keep_execution_mode():
    """Each test leaves the mode as it found it, also when the code it runs switches it (train.py's and validate.py's
    ``main`` set the mode of the process from --mode)."""
    yield from _in_mode(ms.get_context("mode"))


@pytest.fixture
def pynative():
    """The test runs in PyNative mode; the mode before it is restored afterwards."""
    yield from _in_mode(ms.PYNATIVE_MODE)


@pytest.fixture
def graph():
    """The test runs in Graph mode; the mode before it is restored afterwards."""
    yield from _in_mode(ms.GRAPH_MODE)


@pytest.fixture
def tiny_model(monkeypatch):
    """``--model tiny_net`` registered for one test (the registry is restored afterwards): the training,
    checkpoint and resume mechanics of train.py without res2net50's compile and step time."""
    for table, entry in tiny_net.registry_entries():
        monkeypatch.setitem(table, tiny_net.NAME, entry)
    return tiny_net.NAME
