"""A tiny training run's flags, and what a run folder holds: for the tests of the training room."""
import csv
import os

# tiny_net (the ``tiny_model`` fixture registers it) on 64 digits at 32 px in PyNative mode
TINY_NET = ["--model", "tiny_net", "--mode", "1", "--dataset", "digits", "--image_resize", "32", "--num_samples", "64",
            "--num_parallel_workers", "1", "--opt", "adamw", "--lr", "0.002", "--seed", "3"]
TINY_NET_RUN = TINY_NET + ["--batch_size", "16"]  # 4 steps per epoch


def folder_files(folder) -> dict:
    """{relative path: bytes} of every file under ``folder``."""
    found = {}
    for root, _, names in os.walk(folder):
        for name in names:
            path = os.path.join(root, name)
            with open(path, "rb") as f:
                found[os.path.relpath(path, folder)] = f.read()
    return found


def metrics_epochs(folder) -> list:
    """The epoch column of ``folder``/metrics.csv, as text."""
    with open(os.path.join(folder, "metrics.csv"), newline="") as f:
        return [row["epoch"] for row in csv.DictReader(f)]


def checkpoint_names(folder) -> list:
    """The sorted names of the .ckpt files in ``folder``."""
    return sorted(n for n in os.listdir(folder) if n.endswith(".ckpt"))
