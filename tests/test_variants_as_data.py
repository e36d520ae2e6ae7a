"""Variants are data: each model is one row of a ``VARIANTS`` table, and its builder function
(``res2net50()`` ...) is made from that row, registered under the row's name and importable by it."""
import ast
import inspect

import numpy as np
import pytest

import mindspore as ms
import mindcv_res2net.models
from mindcv_res2net.models import Res2Net, create_model, dla, is_model, list_models, model_entrypoint, registry
from mindcv_res2net.models import res2net
from mindcv_res2net.models.registry import Variant, register_variants

TABLES = {"res2net": res2net, "dla": dla}  # list_modules() name -> the module whose VARIANTS table it is


def test_every_registered_name_is_one_row_with_a_builder_of_that_name():
    rows = [name for module in TABLES.values() for name in module.VARIANTS]
    assert len(rows) == len(set(rows)) == 19
    assert sorted(rows) == list_models()
    aliases = [module.VARIANTS[name].alias for module in TABLES.values() for name in module.VARIANTS]
    assert sorted(filter(None, aliases)) == sorted(set(list_models(include_aliases=True)) - set(rows))
    for short, module in TABLES.items():
        assert list_models(module=short) == sorted(module.VARIANTS)
        for name, row in module.VARIANTS.items():
            builder = getattr(module, name)  # from mindcv_res2net.models.res2net import res2net50
            assert builder is model_entrypoint(name) is getattr(mindcv_res2net.models, name)
            assert builder.__name__ == builder.__qualname__ == name and builder.__module__ == module.__name__
            assert builder.__doc__.startswith(row.summary)
            assert list(inspect.signature(builder).parameters) == ["pretrained", "kwargs"]
        assert set(module.VARIANTS) <= set(module.__all__) & set(mindcv_res2net.models.__all__)


@pytest.mark.parametrize("module", TABLES.values(), ids=TABLES.keys())
def test_each_name_is_spelled_once_in_its_module(module):
    """The table's key is the only spelling: no ``def res2net50`` and no ``"res2net50"`` string besides the key."""
    tree = ast.parse(inspect.getsource(module))
    strings = [node.value for node in ast.walk(tree) if isinstance(node, ast.Constant) and isinstance(node.value, str)]
    defined = {node.name for node in ast.walk(tree) if isinstance(node, ast.FunctionDef)}
    for name in module.VARIANTS:
        assert strings.count(name) == 1, name
        assert name not in defined


def test_a_new_row_registers_a_new_model_and_is_removed_again(monkeypatch):
    for table in ("_builders", "_aliases", "_pretrained_cfgs"):  # restored by monkeypatch.undo() below
        monkeypatch.setattr(registry, table, dict(getattr(registry, table)))
    row = Variant("A tiny test network.", dict(layers=(1, 1, 1, 1), base_width=8, scale=2), {"": res2net._cfg()},
                  "res2net_tiny_8w_2s")
    monkeypatch.setitem(res2net.VARIANTS, "res2net_tiny", row)
    builders = register_variants({"res2net_tiny": row}, res2net._build, res2net.__name__)

    builder = builders["res2net_tiny"]
    assert builder.__name__ == "res2net_tiny" and builder.__doc__.startswith("A tiny test network.")
    assert "res2net_tiny" in list_models(module="res2net") and len(list_models()) == 20
    model = create_model("res2net_tiny_8w_2s", num_classes=3)  # by its alias
    assert type(model) is Res2Net and model.scale == 2 and [len(model.layer1), len(model.layer4)] == [1, 1]
    assert model.default_cfg["architecture"] == "res2net_tiny"
    model.set_train(False)
    image = ms.Tensor(np.zeros((1, 3, 32, 32), np.float32))
    assert model(image).shape == (1, 3)
    assert builder(num_classes=2)(image).shape == (1, 2)

    monkeypatch.undo()
    assert not is_model("res2net_tiny") and not is_model("res2net_tiny_8w_2s") and len(list_models()) == 19
    assert "res2net_tiny" not in res2net.VARIANTS


def test_a_name_registered_twice_is_refused():
    row = Variant("Another res2net50.", dict(layers=(1, 1, 1, 1)), {"": res2net._cfg()})
    with pytest.raises(ValueError, match=r"^test_module: model 'res2net50' is already registered "
                                         r"\(by mindcv_res2net\.models\.res2net\)$"):
        register_variants({"res2net50": row}, res2net._build, "test_module")
    assert model_entrypoint("res2net50") is res2net.res2net50 and res2net.VARIANTS["res2net50"].summary != row.summary


def _structure(model) -> list:
    return [(name, type(cell).__name__) for name, cell in model.cells_and_names()] + \
        [(p.name, p.shape, p.requires_grad) for p in model.get_parameters()]


def test_builder_and_create_model_build_the_same_network():
    from_builder = res2net.res2net50(num_classes=5, drop_path_rate=0.1)
    by_name = create_model("res2net50", num_classes=5, drop_path_rate=0.1)
    by_alias = create_model("res2net50_26w_4s", num_classes=5, drop_path_rate=0.1)
    assert type(from_builder) is type(by_name) is type(by_alias) is Res2Net
    assert _structure(from_builder) == _structure(by_name) == _structure(by_alias)
    assert from_builder.default_cfg == by_name.default_cfg == by_alias.default_cfg
    weights = {p.name: ms.Parameter(p.data.copy(), p.name) for p in from_builder.get_parameters()}
    assert ms.load_param_into_net(by_name, weights) == ([], [])  # every parameter, none left over
    for model in (from_builder, by_name):
        model.set_train(False)
    image = ms.Tensor(np.random.default_rng(0).standard_normal((1, 3, 32, 32)).astype(np.float32))
    np.testing.assert_array_equal(from_builder(image).asnumpy(), by_name(image).asnumpy())


def test_is_stage_block_marks_the_blocks_that_open_a_stage():
    """Official: each stage's first block; PaddleClas (``stage_blocks="strided"``): exactly the stride-2 blocks."""
    tiny = dict(layers=(2, 2, 2, 2), base_width=8, scale=2, num_classes=0)
    stages = ("layer1", "layer2", "layer3", "layer4")
    official, paddle = Res2Net(**tiny), Res2Net(stage_blocks="strided", **tiny)
    assert [[block.is_stage_block for block in getattr(official, s)] for s in stages] == [[True, False]] * 4
    assert [[block.is_stage_block for block in getattr(paddle, s)] for s in stages] == \
        [[False, False]] + [[True, False]] * 3
    assert all((block.pool is not None) == block.is_stage_block for s in stages for block in getattr(paddle, s))
