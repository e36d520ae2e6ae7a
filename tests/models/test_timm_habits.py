"""What timm users do, and timm's own tests/test_models.py, translated, do: list_models(module=[...]) with
timm's module names, the layer config switches at the top level (set_scriptable & co), list_pretrained by
timm's names of our models (aliases), features_only models returning a list in PyNative and Graph mode."""
import numpy as np
import pytest
from mindspore import Tensor

import mindcv_res2net
from mindcv_res2net import (create_model, is_exportable, is_no_jit, is_scriptable, list_models, list_pretrained,
                            set_exportable, set_layer_config, set_no_jit, set_scriptable)
from mindcv_res2net.models import registry
from mindcv_res2net.models.factory import build_model_with_cfg
from mindcv_res2net.models.layers import AvgPool2dCeil, Pool2dPad
from mindcv_res2net.models.res2net import Res2Net, _cfg

TINY = "tiny_res2net_v1b_habits"  # one block per stage, v1b's stem and avg-down shortcuts: builds in ~0.1 s


@pytest.fixture(scope="module")
def tiny_v1b():
    def builder(pretrained=False, **kwargs):
        return build_model_with_cfg(Res2Net, TINY, pretrained, arch=dict(layers=(1, 1, 1, 1), base_width=4, scale=2,
                                                                          deep_stem=True, avg_down=True), **kwargs)

    registry._builders[TINY], registry._pretrained_cfgs[TINY] = builder, {"": _cfg()}
    yield TINY
    del registry._builders[TINY], registry._pretrained_cfgs[TINY]


def _pools(model):
    return [cell for _, cell in model.cells_and_names() if isinstance(cell, (Pool2dPad, AvgPool2dCeil))]


def test_list_models_skips_module_names_it_does_not_define_as_timm():
    """timm's tests/test_models.py parametrizes with list_models(module=[its modules]) at collection: a module
    that defines none of ours adds nothing (it raised, and the whole translated file collected nothing)."""
    dla = list_models(module="dla")
    assert list_models(module=["dla", "resnet", "vision_transformer"]) == dla == ["res2net_dla60", "res2next_dla60"]
    assert list_models(module="resnet") == [] and list_models(module=["byobnet"], pretrained=True) == []


def test_layer_config_switches_at_the_top_level_as_timm():
    pairs = ((set_scriptable, is_scriptable), (set_exportable, is_exportable), (set_no_jit, is_no_jit))
    for setter, getter in pairs:
        assert getattr(mindcv_res2net, setter.__name__) is setter and getter() is False
        with setter(True):
            assert getter() is True
            with setter(False):
                assert getter() is False
            assert getter() is True
        assert getter() is False
    with set_layer_config(scriptable=True, exportable=True):
        assert is_scriptable() and is_exportable() and not is_no_jit()
        with set_layer_config(exportable=None, no_jit=True):  # None leaves a flag as it is
            assert is_exportable() and is_no_jit()
    assert not (is_scriptable() or is_exportable() or is_no_jit())
    set_scriptable(True)  # called, not entered: stays on, as in timm
    try:
        assert is_scriptable()
    finally:
        set_scriptable(False)


def test_exportable_builds_pools_onnx_can_export_with_the_same_output(tiny_v1b, pynative):
    """set_exportable(True) (or create_model(exportable=True)) builds the padded pools as a Pad and an
    unpadded pool, the form ONNX export needs; the network's output is the same."""
    plain = create_model(tiny_v1b, num_classes=5)
    assert _pools(plain) and not any(pool.explicit_pad for pool in _pools(plain))
    with set_exportable(True):
        exportable = create_model(tiny_v1b, num_classes=5)
    assert all(pool.explicit_pad for pool in _pools(exportable)) and not is_exportable()
    assert all(pool.explicit_pad for pool in _pools(create_model(tiny_v1b, exportable=True)))
    for source, target in zip(plain.get_parameters(), exportable.get_parameters()):
        target.set_data(source.data)
    plain.set_train(False), exportable.set_train(False)
    x = Tensor(np.random.default_rng(0).standard_normal((2, 3, 37, 37)).astype(np.float32))
    np.testing.assert_allclose(exportable(x).asnumpy(), plain(x).asnumpy(), rtol=1e-5, atol=1e-5)
    with set_scriptable(True):  # TorchScript has no counterpart: the same network
        assert not any(pool.explicit_pad for pool in _pools(create_model(tiny_v1b, scriptable=True)))


def test_list_pretrained_by_timms_name_lists_that_name():
    """timm calls res2net50 ``res2net50_26w_4s``: list_pretrained by that name lists the weights under it, as
    is_model and create_model accept it; a filter that names the model itself lists each weight file once."""
    assert list_pretrained("res2net50_26w_4s*") == ["res2net50_26w_4s.mindcv_in1k", "res2net50_26w_4s.official_in1k"]
    assert list_models("res2net50_26w_4s") == ["res2net50_26w_4s"] and list_models("dla60_res2ne*") == [
        "dla60_res2net", "dla60_res2next"]
    assert all(mindcv_res2net.is_model(name) for name in list_pretrained("*26w_4s*"))
    by_model = list_pretrained("res2net50*")
    assert "res2net50.official_in1k" in by_model and not any(n.startswith("res2net50_26w_4s") for n in by_model)
    assert list_pretrained() == list_models(pretrained=True) and len(list_pretrained()) == 26  # no alias twice
    assert list_models("res2net50_26w_4s", include_aliases=False) == []
    assert registry.get_pretrained_cfg("res2net50_26w_4s.official_in1k") == \
        registry.get_pretrained_cfg("res2net50.official_in1k")


@pytest.mark.parametrize("mode", ["pynative", "graph"])
def test_features_only_returns_a_list_as_timm(tiny_v1b, mode, request):
    request.getfixturevalue(mode)
    model = create_model(tiny_v1b, features_only=True, out_indices=(1, 3, 4))
    model.set_train(False)
    maps = model(Tensor(np.zeros((1, 3, 32, 32), np.float32)))
    assert isinstance(maps, list) and [m.shape[1] for m in maps] == model.feature_info.channels()
    assert [m.shape[2] for m in maps] == [32 // r for r in model.feature_info.reduction()]
