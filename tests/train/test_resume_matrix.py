"""``--resume auto`` for every setting a user trains with: an interrupted run, resumed, ends with the same tensors
(weights, optimizer state, EMA) as the same run left uninterrupted.

Every optimizer of ``--opt`` in both modes, with and without ``--ema`` and gradient accumulation, in
pairwise (all-pairs) coverage, through train.py's ``main(argv)`` on a tiny network; EMA, accumulation and a
warmup at once; res2net50 in Graph mode with the default momentum optimizer; older files' 0-d states.
"""
import csv
import itertools

import numpy as np
import pytest

from mindcv_res2net import create_model
from mindcv_res2net.cli.parser import parse_settings
from mindcv_res2net.cli.train import main as train_main
from mindcv_res2net.train.trainer import train
from mindcv_res2net.config import FLAGS
from mindcv_res2net.optim import create_optimizer
from mindcv_res2net.weights import CheckpointError, read_checkpoint, read_mindspore_checkpoint, save_weights
from helpers.tiny_net import TinyNet

TOLERANCE = 1e-6
TINY_DATA = ["--dataset", "digits", "--image_resize", "32", "--batch_size", "16", "--num_parallel_workers", "1",
             "--val_while_train", "False", "--seed", "7"]


def optimizers():
    """The ``--opt`` choices the config offers."""
    return FLAGS["opt"].choices


def pairwise_rows(opts):
    """(opt, mode, ema, accumulation) rows covering every pair of values of any two of the four factors:
    each optimizer twice, in mode 0 and in mode 1, with opposite EMA and accumulation settings, the
    (EMA, accumulation) pair of the mode-0 row cycling through all four combinations."""
    rows = []
    for i, opt in enumerate(opts):
        ema, accumulate = [(False, False), (True, False), (False, True), (True, True)][i % 4]
        rows += [(opt, 0, ema, accumulate), (opt, 1, not ema, not accumulate)]
    return rows


def test_pairwise_rows_cover_every_pair():
    rows = pairwise_rows(optimizers())
    values = [set(column) for column in zip(*rows)]
    assert values[0] == set(optimizers()) and all(v == {0, 1} or v == {False, True} for v in values[1:])
    for a, b in itertools.combinations(range(4), 2):
        assert {(r[a], r[b]) for r in rows} == set(itertools.product(values[a], values[b])), (a, b)


def _tensors(path) -> dict:
    state, _ = read_checkpoint(str(path))
    return state


def optimizer_shapes(opt: str, num_classes: int = 10) -> dict:
    """{"optimizer.<name>": shape} of the state of optimizer ``opt`` on a ``TinyNet`` (0-d ones included)."""
    optimizer = create_optimizer(TinyNet(num_classes).trainable_params(), opt, np.full(4, 0.01, np.float32))
    return {"optimizer." + p.name: tuple(p.shape) for p in optimizer.get_parameters()}


def assert_same_tensors(straight: dict, resumed: dict) -> None:
    """Same names, shapes and dtypes; values within ``TOLERANCE``."""
    assert straight.keys() == resumed.keys()
    for name in straight:
        assert (straight[name].shape, straight[name].dtype) == (resumed[name].shape, resumed[name].dtype), name
        worst = float(np.abs(straight[name].astype(np.float64) - resumed[name].astype(np.float64)).max(initial=0))
        assert worst <= TOLERANCE, (name, worst)


@pytest.mark.e2e
@pytest.mark.parametrize("opt, mode, ema, accumulate", pairwise_rows(optimizers()))
def test_interrupted_run_resumes_to_the_same_tensors(tmp_path, tiny_model, opt, mode, ema, accumulate):
    """1 epoch, stop, ``--resume auto`` to 3 epochs == 3 epochs at once. 48 images of 16: 3 steps per
    epoch (2 updates with accumulation 2, the last one of a single batch); the learning rate changes
    every step (warm-up, then cosine decay over a fixed 2 epochs, so the interrupted run has the same
    schedule)."""
    argv = ["--model", tiny_model, *TINY_DATA, "--train_num_samples", "48", "--mode", str(mode), "--opt", opt,
            "--lr", "0.05", "--scheduler", "cosine_decay", "--warmup_epochs", "1", "--decay_epochs", "2"]
    argv += ["--ema", "--ema_decay", "0.8"] if ema else []
    argv += ["--gradient_accumulation_steps", "2"] if accumulate else []
    straight, split = tmp_path / "straight", tmp_path / "split"
    assert train_main(argv + ["--epoch_size", "3", "--ckpt_save_dir", str(straight)]) == 0
    assert train_main(argv + ["--epoch_size", "1", "--ckpt_save_dir", str(split)]) == 0
    assert train_main(argv + ["--epoch_size", "3", "--ckpt_save_dir", str(split), "--resume", "auto"]) == 0

    expected, resumed = _tensors(straight / f"{tiny_model}-3_3.ckpt"), _tensors(split / f"{tiny_model}-3_3.ckpt")
    assert any(k.startswith("optimizer.") for k in expected) and "optimizer.global_step" in expected
    assert any(k.startswith("ema.") for k in expected) == ema
    assert int(expected["optimizer.global_step"].reshape(-1)[0]) == 3 * (2 if accumulate else 3)
    shapes = optimizer_shapes(opt)
    assert {k: v.shape for k, v in expected.items() if k.startswith("optimizer.")} == {
        k: shapes[k] for k in expected if k.startswith("optimizer.")}  # a 0-d state stays 0-d in the file
    assert_same_tensors(expected, resumed)
    assert [r["epoch"] for r in csv.DictReader(open(split / "metrics.csv"))] == ["1", "2", "3"]


def _all_entries(path):
    return {k: v for k, v in read_mindspore_checkpoint(str(path)).items() if isinstance(v, np.ndarray)}


@pytest.mark.e2e
def test_resume_continues_exactly(tmp_path, pynative, tiny_model):
    """EMA, gradient accumulation and a warmup into cosine decay at once, resumed after epoch 1 in PyNative mode;
    validation and conversion then use the EMA weights of the checkpoint."""
    common = ["--model", tiny_model, "--mode", "1", *TINY_DATA, "--num_samples", "48", "--epoch_size", "2", "--opt",
              "adamw", "--lr", "0.002", "--ema", "--ema_decay", "0.9", "--gradient_accumulation_steps", "2",
              "--scheduler", "cosine_decay", "--warmup_epochs", "1"]
    train(parse_settings(common + ["--ckpt_save_dir", str(tmp_path / "straight")]))
    train(parse_settings(common + ["--ckpt_save_dir", str(tmp_path / "split"), "--epoch_size", "1"]))
    first = _all_entries(tmp_path / "split" / "tiny_net-1_3.ckpt")
    assert any(k.startswith("ema.") for k in first) and "optimizer.global_step" in first
    assert int(first["optimizer.global_step"].reshape(-1)[0]) == 2  # 3 batches, accumulation 2 -> 2 updates
    train(parse_settings(common + ["--ckpt_save_dir", str(tmp_path / "split"), "--resume", "auto"]))
    straight = _all_entries(tmp_path / "straight" / "tiny_net-2_3.ckpt")
    resumed = _all_entries(tmp_path / "split" / "tiny_net-2_3.ckpt")
    assert straight.keys() == resumed.keys()
    worst = max(float(np.abs(straight[k].astype(np.float64) - resumed[k]).max()) for k in straight)
    assert worst <= 1e-6, worst
    rows = list(csv.DictReader(open(tmp_path / "split" / "metrics.csv")))
    assert [r["epoch"] for r in rows] == ["1", "2"]
    # validation and conversion use the EMA weights of such a checkpoint
    model = create_model(tiny_model, num_classes=10, checkpoint_path=str(tmp_path / "split" / "tiny_net-2_3.ckpt"))
    assert np.array_equal(model.conv1.weight.asnumpy(), resumed["ema.conv1.weight"])


@pytest.mark.e2e
def test_res2net50_in_graph_mode_with_momentum_resumes_to_the_same_tensors(tmp_path):
    """res2net50 on digits in Graph mode with the default momentum optimizer: epoch 1,
    then ``--epoch_size=2 --resume=auto``, here on one batch of 64 images per epoch. With one step per
    epoch the 1-epoch and 2-epoch cosine schedules share the first step, so the resumed run must end
    where a 2-epoch run does."""
    argv = ["--model=res2net50", "--dataset=digits", "--image_resize=32", "--batch_size=64", "--seed=7", "--mode=0",
            "--val_while_train=False", "--train_num_samples=64", "--num_parallel_workers=1"]
    split, straight = tmp_path / "split", tmp_path / "straight"
    assert train_main(argv + ["--epoch_size=1", f"--ckpt_save_dir={split}"]) == 0
    first = _tensors(split / "res2net50-1_1.ckpt")
    assert first["optimizer.momentum"].shape == () and first["optimizer.momentum"] == np.float32(0.9)
    assert train_main(argv + ["--epoch_size=2", "--resume=auto", f"--ckpt_save_dir={split}"]) == 0
    assert train_main(argv + ["--epoch_size=2", f"--ckpt_save_dir={straight}"]) == 0
    resumed = _tensors(split / "res2net50-2_1.ckpt")
    assert int(resumed["optimizer.global_step"].reshape(-1)[0]) == 2
    assert_same_tensors(_tensors(straight / "res2net50-2_1.ckpt"), resumed)


@pytest.mark.e2e
def test_checkpoint_with_one_element_scalars_resumes(tmp_path, tiny_model):
    """Files of an older writer, which stored 0-d states with shape (1,) (``optimizer.momentum``),
    still resume, into a 0-d state. Another wrong shape is named with both shapes."""
    argv = ["--model", tiny_model, *TINY_DATA, "--train_num_samples", "32", "--mode", "1", "--opt", "momentum",
            "--ckpt_save_dir", str(tmp_path)]
    assert train_main(argv + ["--epoch_size", "1"]) == 0
    path = tmp_path / f"{tiny_model}-1_2.ckpt"
    state, metadata = read_checkpoint(str(path))
    assert state["optimizer.momentum"].shape == ()
    save_weights(dict(state, **{"optimizer.momentum": state["optimizer.momentum"].reshape(1)}), path,
                 metadata=metadata)
    assert train_main(argv + ["--epoch_size", "2", "--resume", "auto"]) == 0
    resumed = _tensors(tmp_path / f"{tiny_model}-2_2.ckpt")
    assert resumed["optimizer.momentum"].shape == () and resumed["optimizer.momentum"] == np.float32(0.9)
    _, metadata = read_checkpoint(str(tmp_path / f"{tiny_model}-2_2.ckpt"))
    save_weights(dict(resumed, **{"optimizer.moments.fc.weight": resumed["optimizer.moments.fc.weight"].reshape(-1)}),
                 tmp_path / f"{tiny_model}-2_2.ckpt", metadata=metadata)
    with pytest.raises(CheckpointError, match=r"-2_2.ckpt: cannot resume, 1 entries missing or of another shape: "
                                              r"optimizer.moments.fc.weight \(shape \(40,\), not \(10, 4\)\)$"):
        train_main(argv + ["--epoch_size", "3", "--resume", "auto"])
