"""Helpers the tests import as ``helpers`` (pyproject.toml's ``pythonpath = ["tests"]``): running the programs
(``programs``), stand-in checkpoints (``checkpoints``), the official networks' weights of the parity data
(``parity``), writers of PyTorch and Paddle files (``torch_writer``, ``paddle_writer``), small ONNX graphs
(``onnx_graphs``), the tiny network of the training tests (``tiny_net``), its run's flags and folder (``runs``)
and msrun on this machine (``msrun``).
Per-test state (modes, registered models, temporary folders) is in the fixtures of the conftest.py files."""
import os

TESTS_DIR = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
PROJECT_DIR = os.path.dirname(TESTS_DIR)
REFERENCE_DIR = os.path.join(TESTS_DIR, "reference")  # files made outside this project: see each folder's README
