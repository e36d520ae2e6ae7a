"""One place knows each source's head and stem (``weights.names``): ``describe_checkpoint`` reads a file's
class count and input channels from them, the models name their cells by them, and a 1-channel
Res2Net or Res2Net-DLA file goes through convert, export, predict and validate."""
import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st
from PIL import Image

import mindspore as ms
from helpers.programs import run_tool
from mindcv_res2net.models import get_pretrained_cfg, list_models
from mindcv_res2net.weights import CheckpointError, read_checkpoint, save_weights
from mindcv_res2net.weights.checkpoint_layout import EMA_PREFIX, OPTIMIZER_PREFIX, describe_checkpoint
from mindcv_res2net.weights.names import CLASSIFIER, STEM_CONVS, stem_conv_weight

# (how a source names its classifier weight, its stem convolution weight for each of ours); None: ours
SOURCES = {
    "ours": (None, None),
    "mindcv": ("classifier.weight", None),
    "mmpretrain": ("head.fc.weight", "backbone.{}.weight"),
}


def _state(source: str, stem: str, in_channels: int, num_classes: int) -> dict:
    """A tiny state dict as ``source`` names it: a stem convolution and a classifier (plus a BatchNorm)."""
    head_name, stem_pattern = SOURCES[source]
    state = {(stem_pattern or "{}.weight").format(stem): np.zeros((4, in_channels, 3, 3), np.float32),
             head_name or f"{CLASSIFIER}.weight": np.zeros((num_classes, 4), np.float32)}
    prefix = "backbone." if source == "mmpretrain" else ""
    state[f"{prefix}bn1.weight"] = np.ones(4, np.float32)
    return state


@settings(max_examples=60, deadline=None)
@given(source=st.sampled_from(sorted(SOURCES)), stem=st.sampled_from(STEM_CONVS),
       in_channels=st.integers(1, 64), num_classes=st.integers(1, 2000), agree=st.booleans())
def test_every_sources_head_and_every_stem_give_classes_and_channels(source, stem, in_channels, num_classes, agree):
    state = _state(source, stem, in_channels, num_classes)
    metadata = {"in_channels": in_channels if agree else in_channels + 1}
    if agree:
        info = describe_checkpoint(state, metadata, "f.ckpt")
        assert (info["num_classes"], info["in_channels"]) == (num_classes, in_channels)
    else:  # the metadata may not claim another stem than the tensors hold
        with pytest.raises(CheckpointError, match=rf"^f.ckpt: metadata 'in_channels' is {in_channels + 1} but its "
                                                  rf"tensors have {in_channels}$"):
            describe_checkpoint(state, metadata, "f.ckpt")


@settings(max_examples=30, deadline=None)
@given(in_channels=st.integers(1, 4096), ema=st.booleans())
def test_without_a_known_stem_the_metadata_gives_the_channels(in_channels, ema):
    state = {"layer1.0.conv1.weight": np.zeros((4, 8, 1, 1), np.float32), f"{OPTIMIZER_PREFIX}step": np.ones(1)}
    if ema:  # a training checkpoint: its averages are what describe_checkpoint reads
        state.update({EMA_PREFIX + k: v for k, v in state.items() if not k.startswith(OPTIMIZER_PREFIX)})
    info = describe_checkpoint(state, {"in_channels": in_channels}, "f.ckpt")
    assert (info["num_classes"], info["in_channels"]) == (0, in_channels)
    assert describe_checkpoint(state, {}, "f.ckpt")["in_channels"] == 3  # nothing says otherwise: RGB


def test_paddle_head_and_deep_stem_are_read_under_our_names():
    state = {"conv1_1._conv.weight": np.zeros((32, 1, 3, 3), np.float32),
             "out.weight": np.zeros((2048, 7), np.float32), "out.bias": np.zeros(7, np.float32)}
    info = describe_checkpoint(state, {}, "p.pdparams")
    assert (info["num_classes"], info["in_channels"]) == (7, 1)
    state["out.weight"] = state["out.weight"].T.copy()  # stored (out, in): PaddleClas' advice, one line
    with pytest.raises(CheckpointError, match=r"^p.pdparams: its Paddle classifier out.weight is stored \(7, 2048\)"):
        describe_checkpoint(state, {}, "p.pdparams")


def test_every_registered_models_first_conv_is_a_known_stem():
    for name in list_models():
        assert get_pretrained_cfg(name)["first_conv"] in STEM_CONVS, name
        assert get_pretrained_cfg(name)["classifier"] == CLASSIFIER, name


# ------------------------------------------------------------------------- a 1-channel file through every tool


@pytest.fixture(scope="module", params=["res2net_dla60", "res2net50"])
def grey_checkpoint(request, tmp_path_factory):
    """(model name, folder, train.py-like checkpoint, bare .npz, MindSpore model) of a 1-channel 10-class network
    whose BatchNorm is not the identity; the checkpoint's run validated on digits at 32 px."""
    from mindcv_res2net import create_model

    name, folder = request.param, tmp_path_factory.mktemp(request.param)
    model = create_model(name, num_classes=10, in_channels=1)
    rng = np.random.default_rng(0)
    for p in model.get_parameters():
        if "moving_" in p.name or "gamma" in p.name:
            p.set_data(ms.Tensor(rng.uniform(0.5, 1.5, p.shape).astype(np.float32)))
    model.set_train(False)
    weights = {p.name: p.asnumpy() for p in model.get_parameters()}
    config = dict(dataset="digits", image_resize=32, num_samples=8, batch_size=8)
    ckpt = save_weights(weights, str(folder / f"{name}-best.ckpt"), metadata=dict(
        model=name, num_classes=10, in_channels=1, class_names=[str(d) for d in range(10)], config=config))
    bare = folder / "bare.npz"
    np.savez(bare, **weights)
    return name, folder, ckpt, str(bare), model


def test_convert_keeps_one_channel(grey_checkpoint):
    from mindcv_res2net.deploy.convert import convert_weights

    name, folder, ckpt, bare, model = grey_checkpoint
    # a file without metadata: its stem alone says 1 channel (describe_checkpoint knew only Res2Net's)
    state, metadata = read_checkpoint(convert_weights(bare, str(folder / "converted.ckpt"), name))
    assert (metadata["in_channels"], metadata["num_classes"]) == (1, 10)
    stem = stem_conv_weight(state)
    assert stem == f"{get_pretrained_cfg(name)['first_conv']}.weight" and state[stem].shape[1] == 1


def test_export_runs_a_grey_image_as_mindspore_does(grey_checkpoint):
    import onnxruntime as ort

    from mindcv_res2net.deploy.export import export_model

    name, folder, ckpt, _, model = grey_checkpoint
    path = export_model(name, ckpt, str(folder / "grey"), file_format="ONNX").path  # the run's 32 px
    x = np.random.default_rng(1).standard_normal((1, 1, 32, 32)).astype(np.float32)
    session = ort.InferenceSession(path, providers=["CPUExecutionProvider"])
    (logits,) = session.run(None, {session.get_inputs()[0].name: x})
    np.testing.assert_allclose(logits, model(ms.Tensor(x)).asnumpy(), rtol=1e-3, atol=1e-3)


def test_predict_reads_a_grey_image(grey_checkpoint):
    from mindcv_res2net.deploy.predict import load_for_prediction, predict

    name, folder, ckpt, _, _ = grey_checkpoint
    Image.fromarray((np.random.default_rng(2).random((12, 12)) * 255).astype(np.uint8), "L").save(folder / "g.png")
    loaded, config = load_for_prediction(name, ckpt)
    assert loaded.in_channels == 1 and config["dataset"] == "digits"
    (result,) = predict(loaded, [str(folder / "g.png")], topk=3, run_config=config)
    assert "error" not in result and len(result["top"]) == 3
    assert all(t["name"] in loaded.class_names for t in result["top"])


def test_validate_follows_the_files_model_unless_model_is_given(grey_checkpoint, capsys):
    from mindcv_res2net.cli.parser import parse_config
    from mindcv_res2net.deploy.validate import validate

    name, _, ckpt, _, _ = grey_checkpoint
    other = "res2net50" if name == "res2net_dla60" else "res2net_dla60"
    result = validate(*parse_config(["--ckpt_path", ckpt, "--mode", "1"], program="validate"))  # --model: default
    assert result["images"] == 8 and 0 <= result["top1"] <= 100
    assert f"\n{name} on digits/val: top-1 " in capsys.readouterr().out
    with pytest.raises(ValueError, match=rf"^--model {other}: {ckpt} was trained as model '{name}'$"):
        validate(*parse_config(["--model", other, "--ckpt_path", ckpt, "--mode", "1"], program="validate"))


@pytest.mark.parametrize("tool", ["export", "predict"])
def test_export_and_predict_refuse_another_model_as_validate_does(grey_checkpoint, tool, capsys):
    name, folder, ckpt, _, _ = grey_checkpoint
    other = "res2net50" if name == "res2net_dla60" else "res2net_dla60"
    argv = ["--model", other, "--ckpt_path", ckpt] + (
        ["--file_name", str(folder / "never")] if tool == "export" else [str(folder / "g.png")])
    code, err = run_tool(tool, argv, capsys)
    assert code == 2 and err == f"error: --model {other}: {ckpt} was trained as model '{name}'\n", err
    assert not list(folder.glob("never*"))
