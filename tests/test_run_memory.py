"""A run remembers itself (issue 23): --resume takes the run's settings from its checkpoint, flags that would
be ignored are refused, and messages say what is wrong."""
import os

import pytest
import yaml

from mindcv_res2net.cli.train import main as train_main
from mindcv_res2net.config import ConfigError, parse_args, parse_config
from mindcv_res2net.weights import read_checkpoint_metadata
from conftest import run, run_tool

# a run whose every setting differs from train.py's defaults where it matters for resuming
TINY = ["--mode", "1", "--model", "res2net50_26w_4s", "--image_resize", "32", "--num_samples", "16", "--batch_size",
        "16", "--num_parallel_workers", "1", "--opt", "adamw", "--lr", "0.001", "--seed", "5",
        "--val_while_train", "false"]


def _log(folder) -> str:
    return open(os.path.join(folder, "train.log")).read()


def test_resume_auto_alone_continues_the_run_with_its_own_settings(tmp_path, pynative):
    """Issue point 2: --ckpt_save_dir RUN --resume auto, no --model, no -c, continues the run."""
    out = str(tmp_path / "run")
    train_main(TINY + ["--epoch_size", "1", "--ckpt_save_dir", out])
    first = read_checkpoint_metadata(os.path.join(out, "res2net50_26w_4s-1_1.ckpt"))
    train_main(["--ckpt_save_dir", out, "--resume", "auto", "--epoch_size", "2"])
    second = read_checkpoint_metadata(os.path.join(out, "res2net50_26w_4s-2_1.ckpt"))
    assert second["run_id"] == first["run_id"] and second["epoch"] == 2
    for key in ("model", "image_resize", "opt", "lr", "seed", "num_samples"):
        assert second["config"][key] == first["config"][key], key
    assert "resumed with the run's own settings, except: epoch_size 1 -> 2" in _log(out)
