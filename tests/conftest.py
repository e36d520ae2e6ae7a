"""Shared fixtures: CPU device, execution modes, a tiny registered network, and the official PyTorch-named
weights of the parity data."""
import functools
import importlib
import json
import os
import shutil
import subprocess
import sys
import tempfile
import zlib

import numpy as np
import pytest

import mindcv_res2net  # noqa: F401  (sets ONEDNN_MAX_CPU_ISA before mindspore loads)
import mindspore as ms

TESTS_DIR = os.path.dirname(os.path.abspath(__file__))
PROJECT_DIR = os.path.dirname(TESTS_DIR)
PARITY_DIR = os.path.join(TESTS_DIR, "data", "parity")
sys.path.insert(0, TESTS_DIR)  # test helpers (torch_writer, tiny_net)
sys.path.insert(0, os.path.join(PROJECT_DIR, "tools"))  # the tools' main(argv), for run_tool
sys.path.insert(0, os.path.join(PROJECT_DIR, "tools", "maintainer"))  # the reference makers' inputs (make_dilated_reference)
import tiny_net  # noqa: E402  (tests/tiny_net.py)

ms.set_device("CPU")

with open(os.path.join(PARITY_DIR, "manifest.json")) as _f:
    MANIFEST = json.load(_f)

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


@pytest.fixture
def pynative():
    ms.set_context(mode=ms.PYNATIVE_MODE)
    yield


@pytest.fixture
def graph():
    ms.set_context(mode=ms.GRAPH_MODE)
    yield
    ms.set_context(mode=ms.PYNATIVE_MODE)


@pytest.fixture
def tiny_model(monkeypatch):
    """``--model tiny_net`` registered for one test (the registry is restored afterwards): the training,
    checkpoint and resume mechanics of train.py without res2net50's compile and step time."""
    for table, entry in tiny_net.registry_entries():
        monkeypatch.setitem(table, tiny_net.NAME, entry)
    return tiny_net.NAME


def rule_weight(key: str, shape) -> np.ndarray:
    """The parity README's rule for every tensor that is not BatchNorm."""
    rng = np.random.default_rng(zlib.crc32(key.encode()))
    w = rng.standard_normal(shape, dtype=np.float64)
    if key in ("fc.bias", "out.bias"):
        w *= 0.01
    else:
        fan_out = shape[0] * (shape[2] * shape[3] if len(shape) == 4 else 1)
        w *= np.sqrt(2.0 / fan_out)
    return w.astype(np.float32)


def parity_file(variant: str):
    return np.load(os.path.join(PARITY_DIR, f"{variant}.npz"), allow_pickle=False)


@functools.lru_cache(maxsize=2)
def official_state_dict(variant: str) -> dict:
    """The complete official PyTorch state dict of a parity variant (rule tensors + stored BatchNorm)."""
    data = parity_file(variant)
    state = {}
    for key, padded, abssum in zip(data["keys"], data["shapes"], data["gen_abssum"]):
        key = str(key)
        if f"bn/{key}" in data.files:
            state[key] = data[f"bn/{key}"]
        else:
            state[key] = rule_weight(key, tuple(int(s) for s in padded if s >= 0))
            assert np.isclose(np.abs(state[key]).sum(dtype=np.float64), abssum, rtol=1e-9), key
    return state


@pytest.fixture(scope="session")
def parity_inputs():
    return dict(np.load(os.path.join(PARITY_DIR, "inputs.npz"), allow_pickle=False))


def model_params(model) -> dict:
    return {p.name: p.asnumpy() for p in model.get_parameters()}


class PickleExploit:
    """Pickles as a call of ``os.system`` that creates ``marker``: a malicious weight file's payload."""

    def __init__(self, marker):
        self.marker = marker

    def __reduce__(self):
        return os.system, (f"touch {self.marker}",)


def save_trained_like_checkpoint(path, num_classes: int, metadata: dict = None, seed: int = 0,
                                 model_name: str = "res2net50"):
    """A ``model_name`` network with non-trivial BatchNorm (gamma and running statistics in [0.5, 1.5]) saved to ``path``.

    Returns the model in eval mode: a stand-in for a trained checkpoint whose logits depend on every tensor.
    """
    from mindcv_res2net import create_model
    from mindcv_res2net.weights import save_weights

    ms.set_context(mode=ms.PYNATIVE_MODE)
    model = create_model(model_name, num_classes=num_classes)
    rng = np.random.default_rng(seed)
    for p in model.get_parameters():
        if "moving_" in p.name or "gamma" in p.name:
            p.set_data(ms.Tensor(rng.uniform(0.5, 1.5, p.shape).astype(np.float32)))
    save_weights({p.name: p.asnumpy() for p in model.get_parameters()}, str(path), metadata=metadata)
    model.set_train(False)
    return model


# ---------------------------------------------------------------------------------------------- subprocesses


def run(args, env_extra=None, unset=()):
    """``python ARGS`` in the project folder, as a user would run it: the finished process (text output)."""
    env = {k: v for k, v in os.environ.items() if k not in unset}
    env.update(env_extra or {})
    return subprocess.run([sys.executable] + args, cwd=PROJECT_DIR, env=env, capture_output=True, text=True,
                          timeout=600)


def run_tool(name, argv, capsys):
    """``tools/<name>.py``'s ``main(argv)`` through ``run_cli`` in this process (no interpreter start-up,
    for error paths; the tools' own tests run each tool once as a subprocess): (exit code, stderr)."""
    from mindcv_res2net.utils.cli import run_cli

    module = importlib.import_module(name)
    capsys.readouterr()
    with pytest.raises(SystemExit) as exit_info:
        run_cli(lambda: module.main(argv))
    return exit_info.value.code, capsys.readouterr().err


def assert_quiet_exit(proc):
    assert "Exception ignored" not in proc.stderr and "Traceback" not in proc.stderr, proc.stderr
