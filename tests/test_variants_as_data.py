"""Variants are data: each model is one row of a ``VARIANTS`` table, and its builder function
(``res2net50()`` ...) is written out below the table as one registered line, as timm writes them; the
registry takes the row's weight configs and alias with the builder."""
import ast
import inspect
import sys
import textwrap
import types

import numpy as np
import pytest

import mindspore as ms
import mindcv_res2net.models
from mindcv_res2net.models import Res2Net, create_model, dla, is_model, list_models, model_entrypoint, registry
from mindcv_res2net.models import res2net
from mindcv_res2net.models.registry import get_pretrained_cfg

TABLES = {"res2net": res2net, "dla": dla}  # list_modules() name -> the module whose VARIANTS table it is


def _written_builders(module) -> dict:
    """{name: the call in its body} of every ``@register_model`` function written in ``module``'s source."""
    tree = ast.parse(inspect.getsource(module))
    return {node.name: node.body[-1].value for node in tree.body if isinstance(node, ast.FunctionDef)
            and any(getattr(d, "id", None) == "register_model" for d in node.decorator_list)}


def test_every_row_has_one_written_out_builder_of_its_name_and_every_builder_a_row():
    rows = [name for module in TABLES.values() for name in module.VARIANTS]
    assert len(rows) == len(set(rows)) == 19
    assert sorted(rows) == list_models()
    aliases = [module.VARIANTS[name].alias for module in TABLES.values() for name in module.VARIANTS]
    assert sorted(filter(None, aliases)) == sorted(set(list_models(include_aliases=True)) - set(rows))
    for short, module in TABLES.items():
        written = _written_builders(module)
        assert sorted(written) == sorted(module.VARIANTS) == list_models(module=short)
        for name, row in module.VARIANTS.items():
            call = written[name]  # return _create("res2net50", pretrained, **kwargs): the row of its own name
            assert call.func.id == "_create" and call.args[0].value == name
            builder = getattr(module, name)  # from mindcv_res2net.models.res2net import res2net50
            assert builder is model_entrypoint(name) is getattr(mindcv_res2net.models, name)
            assert builder.__module__ == module.__name__
            assert inspect.getsource(builder).startswith(f"@register_model\ndef {name}(pretrained: bool = False, ")
            signature = inspect.signature(builder)  # what an IDE and a type checker see
            assert list(signature.parameters) == ["pretrained", "kwargs"]
            assert signature.return_annotation is (Res2Net if module is res2net else dla.Res2NetDLA)
            assert builder.__doc__ and "\n" not in builder.__doc__.strip()
            assert sorted(registry._pretrained_cfgs[name]) == sorted(row.cfgs)  # the registry took the row's
        assert set(module.VARIANTS) <= set(module.__all__) & set(mindcv_res2net.models.__all__)


TINY_MODULE = textwrap.dedent('''
    """A user's module: one row and its builder, as res2net.py writes them."""
    from mindcv_res2net.models import Res2Net, register_model
    from mindcv_res2net.models.factory import build_model_with_cfg
    from mindcv_res2net.models.registry import Variant
    from mindcv_res2net.models.res2net import _cfg

    VARIANTS = {"res2net_tiny": Variant(dict(layers=(1, 1, 1, 1), base_width=8, scale=2), {"": _cfg()},
                                        "res2net_tiny_8w_2s")}


    @register_model
    def res2net_tiny(pretrained: bool = False, **kwargs) -> Res2Net:
        """A tiny test network."""
        return build_model_with_cfg(Res2Net, "res2net_tiny", pretrained, arch=VARIANTS["res2net_tiny"].arch,
                                    **kwargs)
''')


def _import_source(name: str, source: str, monkeypatch) -> types.ModuleType:
    module = types.ModuleType(name)
    monkeypatch.setitem(sys.modules, name, module)
    exec(compile(source, f"<{name}>", "exec"), module.__dict__)
    return module


def test_a_new_row_and_its_builder_register_a_new_model_and_are_removed_again(monkeypatch):
    for table in ("_builders", "_aliases", "_pretrained_cfgs"):  # restored by monkeypatch.undo() below
        monkeypatch.setattr(registry, table, dict(getattr(registry, table)))
    module = _import_source("tiny_models", TINY_MODULE, monkeypatch)

    builder = module.res2net_tiny
    assert model_entrypoint("res2net_tiny") is builder
    assert list_models(module="tiny_models") == ["res2net_tiny"] and len(list_models()) == 20
    model = create_model("res2net_tiny_8w_2s", num_classes=3)  # by the row's alias
    assert type(model) is Res2Net and model.scale == 2 and [len(model.layer1), len(model.layer4)] == [1, 1]
    assert model.default_cfg["architecture"] == "res2net_tiny"
    model.set_train(False)
    image = ms.Tensor(np.zeros((1, 3, 32, 32), np.float32))
    assert model(image).shape == (1, 3)
    assert builder(num_classes=2)(image).shape == (1, 2)

    monkeypatch.undo()
    assert not is_model("res2net_tiny") and not is_model("res2net_tiny_8w_2s") and len(list_models()) == 19


def test_a_name_registered_by_another_module_is_refused(monkeypatch):
    for table in ("_builders", "_aliases", "_pretrained_cfgs"):
        monkeypatch.setattr(registry, table, dict(getattr(registry, table)))
    source = TINY_MODULE.replace("res2net_tiny", "res2net50")
    with pytest.raises(ValueError, match=r"^other_models: model 'res2net50' is already registered "
                                         r"\(by mindcv_res2net\.models\.res2net\)$"):
        _import_source("other_models", source, monkeypatch)
    assert model_entrypoint("res2net50") is res2net.res2net50
    assert get_pretrained_cfg("res2net50")["url"]  # the row of the other module was not taken either


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
