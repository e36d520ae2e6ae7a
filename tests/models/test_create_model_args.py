"""create_model's arguments: every wrong type or value is a one-line TypeError/ValueError naming the
argument, names are checked as timm checks them, None means the default (timm), list_models(None) is
every model."""
import math
import os

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from mindcv_res2net.models import Res2Net, create_model, is_model, registry
from mindcv_res2net.models.factory import build_model_with_cfg
from mindcv_res2net.models.res2net import _cfg

TINY = "tiny_res2net_args"  # a one-block-per-stage Res2Net registered for this file: builds in ~0.1 s


@pytest.fixture(scope="module")
def tiny_res2net():
    def builder(pretrained=False, **kwargs):
        return build_model_with_cfg(Res2Net, TINY, pretrained, arch=dict(layers=(1, 1, 1, 1), base_width=4, scale=2),
                                    **kwargs)

    registry._builders[TINY], registry._pretrained_cfgs[TINY] = builder, {"": _cfg()}
    yield TINY
    del registry._builders[TINY], registry._pretrained_cfgs[TINY]


@pytest.mark.parametrize("kwargs, error, message", [
    (dict(num_classes=-1), ValueError, r"num_classes must be an int >= 0 \(0: no classifier\), got -1"),
    (dict(num_classes=10.0), TypeError, r"num_classes must be an int >= 0, got 10\.0"),
    (dict(num_classes=True), TypeError, r"num_classes must be an int >= 0, got True"),
    (dict(in_channels=0), ValueError, r"in_channels must be an int >= 1, got 0"),
    (dict(in_channels=2.5), TypeError, r"in_channels must be an int >= 1, got 2\.5"),
    (dict(in_chans=-3), ValueError, r"in_channels must be an int >= 1, got -3"),
    (dict(drop_rate=-0.1), ValueError, r"drop_rate must be a number in \[0, 1\), got -0\.1"),
    (dict(drop_rate=math.nan), ValueError, r"drop_rate must be a number in \[0, 1\), got nan"),
    (dict(drop_rate="0.1"), TypeError, r"drop_rate must be a number in \[0, 1\), got '0\.1'"),
    (dict(drop_path_rate=-1), ValueError, r"drop_path_rate must be a number in \[0, 1\), got -1"),
    (dict(drop_path_rate=math.nan), ValueError, r"drop_path_rate must be a number in \[0, 1\), got nan"),
    (dict(drop_path_rate=1.0), ValueError, r"drop_path_rate must be a number in \[0, 1\), got 1\.0"),
    (dict(features_only=True, out_indices=(1.5,)), TypeError,
     r"out_indices must be an int n \(the last n maps\) or a sequence of ints in 0\.\.4 \(or -5\.\.-1\), "
     r"got \(1\.5,\)"),
    (dict(features_only=True, out_indices=(True,)), TypeError, r"out_indices must be .*, got \(True,\)"),
    (dict(features_only=True, out_indices=True), TypeError, r"out_indices must be .*, got True"),
    (dict(features_only=True, out_indices="12"), TypeError, r"out_indices must be .*, got '12'"),
    (dict(features_only=True, out_indices=(1, 5)), ValueError, r"out_indices must be a non-empty subset of 0\.\.4"),
    (dict(out_indices=(1, 2)), ValueError, r"out_indices=\(1, 2\) needs features_only=True"),
    (dict(features_only="yes"), TypeError, r"features_only must be True or False, got 'yes'"),
    (dict(ema=True), ValueError, r"ema=True loads a checkpoint's EMA weights, but no weights are loaded: give "
                                 r"checkpoint_path"),
    (dict(ema="no"), TypeError, r"ema must be True, False or None, got 'no'"),
    (dict(checkpoint_path=5), TypeError, r"checkpoint_path must be a path \(str or os\.PathLike\), got 5"),
])
def test_bad_arguments_are_one_line_errors_naming_them(kwargs, error, message):
    """Each is refused before any cell is built (so these are fast)."""
    with pytest.raises(error, match=f"^{message}") as info:
        create_model("res2net50", **kwargs)
    assert "\n" not in str(info.value)


def test_model_names_are_strs_and_paths_are_named_as_such():
    for name in (None, 5, b"res2net50"):
        with pytest.raises(TypeError, match=rf"^model_name must be a str \(a registered model such as 'res2net50'\), "
                                            rf"got {name!r}$"):
            create_model(name)
        assert not is_model(name)
    with pytest.raises(ValueError, match=r"^unknown model '\.\./res2net50' \(a registered name, not a path: weight "
                                         r"files are checkpoint_path= or --ckpt_path\); did you mean res2net50"):
        create_model("../res2net50")
    with pytest.raises(ValueError, match=r"^unknown model 'hf-hub:timm/res2net50_26w_4s\.in1k' \(a registered name, "
                                         r"not a path.*; did you mean res2net50_26w_4s"):
        create_model("hf-hub:timm/res2net50_26w_4s.in1k")
    with pytest.raises(ValueError, match=r"^unknown model 'res2net50\\n'; did you mean res2net50") as info:
        create_model("res2net50\n")  # one line: the name is shown as its repr
    assert "\n" not in str(info.value)


def test_none_is_the_default_and_the_edges_of_each_range_build(tiny_res2net):
    """timm's create_model drops network arguments given as None (a script's unset flag): the defaults."""
    model = create_model(tiny_res2net, num_classes=None, drop_rate=None, drop_path_rate=None, global_pool=None,
                         features_only=None, out_indices=None, output_stride=None)
    assert model.num_classes == 1000 and model.global_pool == "avg" and not model.features_only
    model = create_model(tiny_res2net, num_classes=0, in_channels=1, drop_rate=np.float32(0.999),
                         drop_path_rate=0.99)
    assert model.num_classes == 0 and model.in_channels == 1 and model.head_drop.p == pytest.approx(0.999)
    model = create_model(tiny_res2net, features_only=True, out_indices=np.array([1, -1]))
    assert model.out_indices == (1, 4)
    assert create_model(tiny_res2net, features_only=True, out_indices=2).out_indices == (3, 4)
    assert create_model(tiny_res2net, num_classes=3, checkpoint_path="", ema=False).num_classes == 3  # mindcv's call


def test_ema_is_honoured_by_create_model_from_checkpoint(tmp_path, tiny_res2net):
    """ema reaches the file's weights (it is not refused there for want of checkpoint_path)."""
    from mindcv_res2net.models import create_model_from_checkpoint
    from mindcv_res2net.weights import save_weights

    model = create_model(tiny_res2net, num_classes=3)
    state = {p.name: p.asnumpy() for p in model.get_parameters()}
    state.update({f"ema.{k}": v + 1 for k, v in state.items()})
    path = str(tmp_path / "ema.ckpt")
    save_weights(state, path)
    key = "fc.bias"
    trained = create_model_from_checkpoint(tiny_res2net, path, ema=False).parameters_dict()[key].asnumpy()
    averaged = create_model_from_checkpoint(tiny_res2net, path, ema=True).parameters_dict()[key].asnumpy()
    np.testing.assert_allclose(averaged, trained + 1)
    with pytest.raises(TypeError, match=r"^ema must be True, False or None, got 1$"):
        create_model_from_checkpoint(tiny_res2net, path, ema=1)


ANY = st.one_of(st.none(), st.booleans(), st.integers(min_value=-(2 ** 70), max_value=12), st.floats(),
                st.text(max_size=4), st.binary(max_size=2),
                st.lists(st.one_of(st.integers(-7, 7), st.floats(), st.booleans(), st.text(max_size=1)),
                         max_size=3).map(tuple),
                st.sampled_from(["avg", "", "max", "avgmax", "getter", os.devnull]), st.builds(object))
ARGUMENTS = ("num_classes", "in_channels", "in_chans", "drop_rate", "drop_path_rate", "features_only", "out_indices",
             "global_pool", "ema", "checkpoint_path", "pretrained", "auto_mapping", "feature_cls", "output_stride")


@settings(max_examples=80, deadline=None)
@given(st.dictionaries(st.sampled_from(ARGUMENTS), ANY, max_size=4), st.one_of(st.none(), ANY, st.just(TINY)))
def test_any_arguments_give_a_model_or_a_one_line_error(tiny_res2net, arguments, name):
    """Arbitrary values for any of create_model's arguments (class counts above 12 left out: a huge but
    valid one would only test the allocator) build a model or raise a one-line TypeError/ValueError."""
    try:
        model = create_model(TINY if name is None else name, **arguments)
    except (TypeError, ValueError) as exc:
        assert str(exc) and "\n" not in str(exc)
        return
    features_only = arguments.get("features_only") or False
    assert model.features_only is features_only
    if arguments.get("num_classes") is not None and not features_only:
        assert model.num_classes == arguments["num_classes"]


def test_pretrained_without_published_weights_is_refused_before_the_network_is_built(monkeypatch):
    """res2net152 publishes no weights: the error comes at once, not after seconds of building 60M parameters."""
    def not_built(*args, **kwargs):
        raise AssertionError("the network was built")

    monkeypatch.setattr(Res2Net, "__init__", not_built)
    with pytest.raises(ValueError, match=r"^model 'res2net152' has no published weights; train it or pass a weight "):
        create_model("res2net152", pretrained=True)
