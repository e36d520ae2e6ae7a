"""Res2Net as a dense-prediction backbone: ``output_stride`` by dilation (parity with timm, tests/reference/dilated),
whole-network weight files into ``features_only`` models, and mmpretrain's ``frozen_stages`` / ``norm_eval``
through real optimizer steps."""
import os
import re

import numpy as np
import pytest
from safetensors.numpy import save_file

import mindspore as ms
from mindspore import nn
from helpers import REFERENCE_DIR
from helpers.programs import assert_quiet_exit, load_script, run
from helpers.checkpoints import model_params, save_trained_like_checkpoint
from mindcv_res2net import create_model
from mindcv_res2net.cli.parser import parse_settings
from mindcv_res2net.train.trainer import train
from mindcv_res2net.models import Res2Net
from mindcv_res2net.models.layers import AvgPool2dCeil, AvgPool2dSame
from mindcv_res2net.utils.cli import run_cli
from mindcv_res2net.weights import read_mindspore_checkpoint
from mindcv_res2net.deploy.convert import convert_weights

load_script("tools/maintainer/timm_reference.py")  # imported by the next, as its folder provides it to the script
_MAKER = load_script("tools/maintainer/make_dilated_reference.py")  # the references' inputs (numpy only)
CHECKED_STRIDES, INPUT_SHAPES, MODELS = _MAKER.CHECKED_STRIDES, _MAKER.INPUT_SHAPES, _MAKER.MODELS
reference_input, reference_weight = _MAKER.reference_input, _MAKER.reference_weight
DILATED_DIR = os.path.join(REFERENCE_DIR, "dilated")


def _reference(model: str):
    return np.load(os.path.join(DILATED_DIR, f"{model}.npz"), allow_pickle=False)


def _timm_file(model: str, data, tmp_path) -> str:
    """The reference weights under timm's names, in timm's file format (safetensors, head and
    ``num_batches_tracked`` included), each tensor checked against the generator's checksum."""
    state = {}
    for key, padded, abssum in zip(data["keys"], data["shapes"], data["gen_abssum"]):
        key = str(key)
        state[key] = reference_weight(key, tuple(int(s) for s in padded if s >= 0))
        assert np.isclose(np.abs(state[key]).sum(dtype=np.float64), abssum, rtol=1e-9), key
    path = str(tmp_path / f"{model}_timm.safetensors")
    save_file(state, path)
    return path


def _map_errors(ours: np.ndarray, data, prefix: str) -> dict:
    """Errors of our (1, C, H, W) map against the stored summary of timm's float64 map."""
    assert ours.shape == tuple(data[f"{prefix}/shape"]), prefix
    flat = ours.reshape(-1)
    return {"max_abs": abs(np.abs(ours).max() - float(data[f"{prefix}/max_abs"])),
            "channel_mean": np.abs(ours.mean(axis=(0, 2, 3)) - data[f"{prefix}/channel_mean"]).max(),
            "position_mean": np.abs(ours.mean(axis=(0, 1)) - data[f"{prefix}/position_mean"]).max(),
            "samples": np.abs(flat[data[f"{prefix}/sample_index"]] - data[f"{prefix}/sample_value"]).max()}


def _assert_maps_match_timm(net, data, stride: int, inputs=tuple(INPUT_SHAPES)) -> None:
    assert net.feature_info.reduction() == data[f"os{stride}/reductions"].tolist()
    net.set_train(False)
    for name in inputs:
        maps = net(ms.Tensor(reference_input(name)))
        assert len(maps) == 5
        for i, fmap in enumerate(maps):
            prefix = f"os{stride}/{name}/map{i}"
            errors = _map_errors(fmap.asnumpy().astype(np.float64), data, prefix)
            tolerance = 1e-4 * float(data[f"{prefix}/max_abs"])
            assert max(errors.values()) <= tolerance, (prefix, errors, tolerance)


@pytest.mark.e2e
@pytest.mark.parametrize("model", MODELS)
def test_dilated_features_match_timm(model, tmp_path, pynative):
    """Output stride 8 from timm's own file (head dropped), 16 from the project's converted checkpoint."""
    data = _reference(model)
    timm_file = _timm_file(model, data, tmp_path)
    converted = convert_weights(timm_file, str(tmp_path / f"{model}.ckpt"), model)
    for stride, path in zip(CHECKED_STRIDES, (timm_file, converted)):
        net = create_model(model, features_only=True, output_stride=stride, checkpoint_path=path)
        assert net.fc is None
        _assert_maps_match_timm(net, data, stride)


@pytest.mark.e2e
def test_dilated_v1b_features_match_timm_graph(tmp_path, graph):
    data = _reference("res2net50_v1b")
    net = create_model("res2net50_v1b", features_only=True, output_stride=8,
                       checkpoint_path=_timm_file("res2net50_v1b", data, tmp_path))
    _assert_maps_match_timm(net, data, 8, inputs=("odd",))


# ---------------------------------------------------------------------------------------------- output_stride


def test_dilation_per_stage_and_block_follows_timm():
    """timm's make_blocks at output stride 8: layer3 dilates by 2, layer4 by 4; a dilated stage's first block
    keeps the previous dilation, its stride-1 pool, and (v1b) a 2x2 'SAME' shortcut pool."""
    model = Res2Net(layers=(1, 1, 2, 2), base_width=8, deep_stem=True, avg_down=True, output_stride=8)
    dilations = [[block.convs[0].dilation[0] for block in getattr(model, f"layer{i}")] for i in range(1, 5)]
    assert dilations == [[1], [1], [1, 2], [2, 4]]
    for layer in (model.layer3, model.layer4):
        assert layer[0].convs[0].stride == (1, 1) and layer[0].pool.stride == 1
        assert isinstance(layer[0].downsample[0], AvgPool2dSame)
        assert all(conv.padding == conv.dilation[0] for block in layer for conv in block.convs)
    assert isinstance(model.layer2[0].downsample[0], AvgPool2dCeil) and model.layer2[0].convs[0].stride == (2, 2)
    assert model.feature_info.reduction() == [2, 4, 8, 8, 8]
    assert Res2Net(layers=(1, 1, 1, 1), output_stride=16).feature_info.reduction() == [2, 4, 8, 16, 16]


def test_same_avg_pool_counts_its_zero_padding():
    x = np.arange(12, dtype=np.float32).reshape(1, 1, 3, 4)
    padded = np.pad(x, ((0, 0), (0, 0), (0, 1), (0, 1)))
    want = (padded[..., :-1, :-1] + padded[..., 1:, :-1] + padded[..., :-1, 1:] + padded[..., 1:, 1:]) / 4
    np.testing.assert_allclose(AvgPool2dSame(2)(ms.Tensor(x)).asnumpy(), want, rtol=1e-6)


@pytest.mark.parametrize("kwargs, message", [
    (dict(output_stride=4), "output_stride must be 8, 16 or 32, got 4"),
    (dict(output_stride="8"), "output_stride must be 8, 16 or 32, got '8'"),
    (dict(output_stride=True), "output_stride must be 8, 16 or 32, got True"),
    (dict(output_stride=8.0), "output_stride must be 8, 16 or 32, got 8.0"),
    (dict(frozen_stages=5), r"frozen_stages must be -1 \(nothing frozen\), 0 \(the stem\) or i in 1..4 "
                            r"\(the stem and stages 1..i\), got 5"),
    (dict(frozen_stages=-2), "frozen_stages must be .*, got -2"),
    (dict(frozen_stages=1.0), "frozen_stages must be .*, got 1.0"),
    (dict(norm_eval="yes"), "norm_eval must be True or False, got 'yes'"),
])
def test_bad_switches_are_one_line_errors(kwargs, message):
    with pytest.raises(ValueError, match=f"^{message}$"):
        Res2Net(layers=(1, 1, 1, 1), **kwargs)


@pytest.mark.parametrize("kwargs", [dict(output_stride=8), dict(output_stride=16), dict(frozen_stages=0)])
def test_dla_refuses_output_stride_and_frozen_stages(kwargs):
    with pytest.raises(ValueError, match=r"^Res2Net-DLA supports neither output_stride nor frozen_stages "
                                         r"\(got output_stride=\d+, frozen_stages=-?\d\); use a Res2Net variant$"):
        create_model("res2net_dla60", **kwargs)


def test_dla_takes_norm_eval():
    model = create_model("res2next_dla60", num_classes=2, norm_eval=True)
    norms = [cell for _, cell in model.cells_and_names() if isinstance(cell, nn.BatchNorm2d)]
    assert norms and all(cell.use_batch_statistics is False for cell in norms)
    assert len(model.trainable_params()) == len([p for p in model.get_parameters() if "moving_" not in p.name])


@pytest.mark.parametrize("name", ["res2net50_v1b", "res2next50", "se_res2net50", "paddle_res2net50_26w_4s",
                                  "paddle_res2net50_vd_26w_4s"])
def test_every_family_takes_the_switches(name, pynative):
    """Stem and all four stages frozen at output stride 8: only the classifier trains; PaddleClas' stage
    blocks (the strided ones, layer2..4) keep their pools at stride 1."""
    model = create_model(name, num_classes=3, output_stride=8, frozen_stages=4, norm_eval=True)
    assert {p.name for p in model.trainable_params()} == {"fc.weight", "fc.bias"}
    assert model.feature_info.reduction() == [2, 4, 8, 8, 8]
    assert [getattr(model, f"layer{i}")[0].pool is not None for i in range(1, 5)] == \
        [not name.startswith("paddle_")] + [True] * 3
    assert model.layer4[0].pool.stride == 1
    assert model.set_train(False)(ms.Tensor(np.zeros((1, 3, 32, 32), np.float32))).shape == (1, 3)


# ---------------------------------------------------------------------------------------------- weight files


def test_features_only_loads_a_whole_network_checkpoint(tmp_path, pynative):
    """A trained 10-class checkpoint (head included) into a dilated features_only backbone: the head's tensors
    are dropped, every other tensor is the file's."""
    path = tmp_path / "trained.ckpt"
    save_trained_like_checkpoint(path, num_classes=10)
    saved = read_mindspore_checkpoint(str(path))
    model = create_model("res2net50", features_only=True, output_stride=16, checkpoint_path=str(path))
    params = model_params(model)
    assert set(params) == {k for k in saved if not k.startswith("fc.")}
    assert all(np.array_equal(params[k], saved[k]) for k in params)


# ---------------------------------------------------------------------------------------------- training switches


def _tiny(**switches) -> Res2Net:
    """A one-block-per-stage v1b Res2Net (deep stem: BatchNorms inside conv1 too), dilated at output stride 8;
    no zero-initialised last BatchNorm, whose tiny early gradients would leave some gammas unchanged in float32."""
    return Res2Net(layers=(1, 1, 1, 1), base_width=8, num_classes=4, deep_stem=True, avg_down=True,
                   output_stride=8, zero_init_last=False, **switches)


def _snapshot(model) -> dict:
    """Copies of every parameter (``asnumpy`` may share the tensor's memory, which training updates in place)."""
    return {name: value.copy() for name, value in model_params(model).items()}


def _train_through_wrappers(model, steps: int = 3) -> None:
    """A few momentum-SGD steps in MindSpore's standard wrappers, whose set_train(True) flags every sub-cell."""
    loss = nn.SoftmaxCrossEntropyWithLogits(sparse=True, reduction="mean")
    optimizer = nn.Momentum(model.trainable_params(), learning_rate=0.01, momentum=0.9)
    step = nn.TrainOneStepCell(nn.WithLossCell(model, loss), optimizer).set_train(True)
    x = ms.Tensor(np.random.default_rng(0).standard_normal((4, 3, 32, 32)).astype(np.float32))
    y = ms.Tensor(np.arange(4, dtype=np.int32))
    for _ in range(steps):
        assert np.isfinite(step(x, y).asnumpy())
    assert model.bn1.training and model.layer1[0].bn1.training  # the wrapper did set the flag


@pytest.mark.e2e
@pytest.mark.parametrize("mode", ["pynative", "graph"])
@pytest.mark.parametrize("frozen_stages, norm_eval", [(2, False), (0, True)])
def test_frozen_stages_and_norm_eval_through_train_one_step_cell(mode, frozen_stages, norm_eval, request):
    request.getfixturevalue(mode)
    model = _tiny(frozen_stages=frozen_stages, norm_eval=norm_eval)
    frozen = ("conv1.", "bn1.") + tuple(f"layer{i}." for i in range(1, frozen_stages + 1))
    before = _snapshot(model)
    trainable = {n for n in before if not n.startswith(frozen) and "moving_" not in n}
    assert {p.name for p in model.trainable_params()} == trainable
    _train_through_wrappers(model)
    after = _snapshot(model)
    changed = {n for n in before if not np.array_equal(before[n], after[n])}
    statistics = {n for n in before if "moving_" in n and not n.startswith(frozen)}
    assert changed == trainable | (set() if norm_eval else statistics)


def test_frozen_stem_normalises_with_running_statistics_in_training(pynative):
    x = ms.Tensor(np.random.default_rng(1).standard_normal((2, 3, 32, 32)).astype(np.float32))
    model = _tiny(frozen_stages=0).set_train(True)
    in_training = model.forward_stem(x).asnumpy()
    np.testing.assert_array_equal(in_training, model.set_train(False).forward_stem(x).asnumpy())
    unfrozen = _tiny()
    unfrozen.set_train(True)
    assert not np.allclose(unfrozen.forward_stem(x).asnumpy(), unfrozen.set_train(False).forward_stem(x).asnumpy())


# ---------------------------------------------------------------------------------------------- train.py

TINY_RUN = ["--mode", "1", "--dataset", "digits", "--image_resize", "32", "--num_samples", "32", "--batch_size", "16",
            "--num_parallel_workers", "1", "--epoch_size", "1", "--val_while_train", "false", "--opt", "momentum",
            "--lr", "0.01"]


@pytest.mark.e2e
def test_train_py_yaml_keys_freeze_stages_and_batchnorm(tmp_path, pynative):
    """``frozen_stages: 2`` and ``norm_eval: true`` from a YAML file: a real run leaves the stem, layer1, layer2 and
    every BatchNorm statistic exactly as the starting file had them, and trains the rest."""
    start = tmp_path / "start.ckpt"
    save_trained_like_checkpoint(start, num_classes=10)  # non-trivial BatchNorm statistics
    initial = read_mindspore_checkpoint(str(start))
    recipe = tmp_path / "frozen.yaml"
    recipe.write_text("frozen_stages: 2\nnorm_eval: true\n")
    summary = train(parse_settings(["-c", str(recipe), *TINY_RUN, "--ckpt_path", str(start),
                                "--ckpt_save_dir", str(tmp_path / "run")]))
    trained = read_mindspore_checkpoint(summary["last_checkpoint"])
    fixed = {k for k in initial if k.startswith(("conv1.", "bn1.", "layer1.", "layer2.")) or "moving_" in k}
    assert all(np.array_equal(trained[k], initial[k]) for k in fixed)
    # (not the BatchNorm gammas: two steps from random convolutions leave them equal in float32 here; the
    # TrainOneStepCell test above sees them train under norm_eval)
    assert not any(np.array_equal(trained[k], initial[k]) for k in ("layer3.0.conv1.weight", "layer4.2.conv3.weight",
                                                                   "fc.weight"))
    assert "frozen_stages: 2" in open(tmp_path / "run" / "config.yaml").read()


def test_train_py_refuses_bad_frozen_stages(tmp_path):
    proc = run(["train.py", "--frozen_stages", "5"])
    assert proc.returncode == 2
    assert proc.stderr.splitlines() == ["error: argument --frozen_stages: invalid choice: 5 "
                                        "(choose from -1, 0, 1, 2, 3, 4)"], proc.stderr[-2000:]
    with pytest.raises(ValueError, match=r"^Res2Net-DLA supports neither output_stride nor frozen_stages"):
        train(parse_settings([*TINY_RUN, "--model", "res2net_dla60", "--frozen_stages", "1",
                          "--ckpt_save_dir", str(tmp_path)]))


# ---------------------------------------------------------------------------------------------- the example


def _example_module():
    return load_script("examples/dense_prediction.py")


@pytest.mark.e2e
def test_dense_prediction_example_smoke():
    proc = run(["examples/dense_prediction.py", "--mode", "pynative", "--steps", "1", "--log_interval", "1",
                "--image_size", "32", "--batch_size", "2", "--train_samples", "4", "--val_samples", "2",
                "--output_strides", "8"])
    assert proc.returncode == 0, proc.stderr[-2000:]
    assert_quiet_exit(proc)
    assert "4 training / 2 held-out scans at 32 px, 11 classes; res2net50, frozen_stages 1" in proc.stdout
    results = re.findall(r"output_stride (\d+): mIoU ([\d.]+), pixel accuracy ([\d.]+)", proc.stdout)
    assert [r[0] for r in results] == ["8"]
    assert all(0.0 <= float(v) <= 1.0 for r in results for v in r[1:])


def test_dense_prediction_example_metrics_and_refusals(capsys):
    example = _example_module()
    matrix = example.confusion(np.array([0, 1, 1, 2]), np.array([0, 1, 2, 2]), 4)
    assert matrix.tolist() == [[1, 0, 0, 0], [0, 1, 0, 0], [0, 1, 1, 0], [0, 0, 0, 0]]
    assert np.isclose(example.mean_iou(matrix), (1.0 + 0.5 + 0.5) / 3)  # class 3 absent: not averaged
    for argv, message in [(["--ink", "1.5"], "error: --ink: must lie strictly between 0 and 1, got 1.5"),
                          (["--output_strides", "4"], "error: argument --output_strides: invalid choice: 4 "
                                                      "(choose from 8, 16, 32)"),
                          (["--train_samples", "2", "--batch_size", "4"],
                           "error: --batch_size: 4 is more than the 2 training scans")]:
        capsys.readouterr()
        with pytest.raises(SystemExit) as exit_info:
            run_cli(lambda: example.main(argv))
        assert exit_info.value.code == 2 and capsys.readouterr().err.splitlines() == [message]
