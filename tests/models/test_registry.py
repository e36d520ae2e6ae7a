"""The registry: which models exist under which names, aliases and weight tags (best published weights first),
through timm's and mindcv's registry functions; unknown names are clear errors. Variants are data: each model is
one row of a ``VARIANTS`` table, and its builder function (``res2net50()`` ...) is written out below the table as
one registered line, as timm writes them; the registry takes the row's weight configs and alias with the builder."""
import ast
import inspect
import sys
import textwrap
import types

import numpy as np
import pytest

import mindspore as ms
import mindcv_res2net.models
from mindcv_res2net import list_pretrained
from mindcv_res2net.models import (Res2Net, create_model, dla, factory, is_model, list_models, model_entrypoint,
                                   registry, res2net)
from mindcv_res2net.models.registry import get_pretrained_cfg

ALL = ["res2net50", "res2net101", "res2net152", "res2net50_v1b", "res2net101_v1b", "res2net152_v1b",
       "res2net50_26w_6s", "res2net50_26w_8s", "res2net50_48w_2s", "res2net50_14w_8s", "res2next50",
       "res2net_dla60", "res2next_dla60", "paddle_res2net50_26w_4s", "paddle_res2net50_14w_8s",
       "paddle_res2net50_vd_26w_4s", "paddle_res2net101_vd_26w_4s", "paddle_res2net200_vd_26w_4s", "se_res2net50"]


ALIASES = {"res2net50_26w_4s": "res2net50", "res2net101_26w_4s": "res2net101", "res2net152_26w_4s": "res2net152",
           "res2net50_v1b_26w_4s": "res2net50_v1b", "res2net101_v1b_26w_4s": "res2net101_v1b",
           "res2net152_v1b_26w_4s": "res2net152_v1b", "dla60_res2net": "res2net_dla60",
           "dla60_res2next": "res2next_dla60", "res2net50_vd": "paddle_res2net50_vd_26w_4s",
           "res2net101_vd": "paddle_res2net101_vd_26w_4s", "res2net200_vd": "paddle_res2net200_vd_26w_4s"}


def test_every_variant_and_alias_is_registered():
    assert sorted(list_models()) == sorted(ALL)
    assert set(list_models(include_aliases=True)) == set(ALL) | set(ALIASES)
    assert list_models("res2net50_v1*") == ["res2net50_v1b"]
    for alias, name in ALIASES.items():
        assert is_model(alias) and get_pretrained_cfg(alias)["first_conv"] == get_pretrained_cfg(name)["first_conv"]


def test_pretrained_tags_best_first():
    tagged = list_models(pretrained=True)
    assert "res2net50.official_in1k" in tagged and "res2net152" not in " ".join(tagged)
    # default = best-scoring published weights
    assert get_pretrained_cfg("res2net50")["source"] == "mindcv"  # 79.35 vs official 77.99
    assert get_pretrained_cfg("res2net101_v1b")["source"] == "official"  # 81.23 vs mindcv 81.14
    cfg = get_pretrained_cfg("res2net50.official_in1k")
    assert cfg["url"].endswith("res2net50_26w_4s-06e79181.pth") and cfg["sha256"] == "06e79181"
    for key in ("input_size", "mean", "std", "crop_pct", "interpolation", "first_conv", "classifier", "num_classes"):
        assert key in cfg
    assert get_pretrained_cfg("res2net50_v1b")["first_conv"] == "conv1.0"
    assert get_pretrained_cfg("res2net152")["url"] == ""
    ssld = get_pretrained_cfg("res2net200_vd")  # the default: the best published Res2Net (85.13%)
    assert ssld["url"].endswith("Res2Net200_vd_26w_4s_ssld_pretrained.pdparams") and ssld["top1"] == 85.13
    assert ssld["sha256"] == "" and ssld["first_conv"] == "conv1.0"  # Paddle publishes no hash
    assert get_pretrained_cfg("paddle_res2net200_vd_26w_4s.paddle_in1k")["top1"] == 81.21
    assert get_pretrained_cfg("dla60_res2next")["url"].endswith("res2next_dla60_4s-d327927b.pth")
    assert get_pretrained_cfg("res2net_dla60")["first_conv"] == "base_layer.0"
    assert get_pretrained_cfg("se_res2net50")["url"] == ""
    mm = get_pretrained_cfg("res2net50_14w_8s.mmpretrain_in1k")
    assert mm["sha256"] == "bc967bf1" and mm["source"] == "mmpretrain"
    assert get_pretrained_cfg("res2net50_14w_8s")["source"] == "official"  # equal top-1: the original file first


def test_unknown_names_are_clear_errors():
    with pytest.raises(ValueError, match=r"unknown model 'res2net5O'; did you mean res2net50"):
        create_model("res2net5O")
    with pytest.raises(ValueError, match=r"no pretrained tag 'imagenet22k'; available: res2net50.mindcv_in1k, res2net50.official_in1k"):
        create_model("res2net50.imagenet22k")
    with pytest.raises(ValueError, match="res2net152' has no published weights"):
        create_model("res2net152", pretrained=True)


def test_registry_functions_of_timm_and_mindcv():
    """timm's list_models filters and mindcv test_models' registry checks (list_modules, model_entrypoint,
    is_model_in_modules, is_model_pretrained)."""
    names = list_models()
    assert names == sorted(names) and len(names) == 19
    modules = mindcv_res2net.list_modules()
    assert modules == ["dla", "res2net"]
    assert all(mindcv_res2net.is_model_in_modules(n, modules) for n in names)
    assert all(callable(mindcv_res2net.model_entrypoint(n)) for n in names)
    assert list_models(module="dla") == ["res2net_dla60", "res2next_dla60"]
    assert list_models(filter=["res2net50_2*", "*dla*"], exclude_filters="res2next*") == [
        "res2net50_26w_4s", "res2net50_26w_6s", "res2net50_26w_8s", "res2net_dla60"]  # timm's names: 26w_4s too
    tagged = list_models("res2net101", pretrained=True)
    assert set(tagged) == {"res2net101.official_in1k", "res2net101.mindcv_in1k", "res2net101.mmpretrain_in1k"}
    assert tagged[0] == "res2net101.mindcv_in1k"  # 79.56: the best-scoring first
    assert list_models(pattern="res2net50_v1*") == list_models("res2net50_v1*") == ["res2net50_v1b"]
    assert list_models(name_matches_cfg=True) == names
    assert "res2net50_26w_4s" in list_models(include_aliases=True, exclude_filters="res2net50")
    assert sum(mindcv_res2net.is_model_pretrained(n) for n in names) == 16  # all but res2net152(_v1b), SE
    assert mindcv_res2net.is_model_pretrained("res2net50") and not mindcv_res2net.is_model_pretrained("res2net152")
    assert mindcv_res2net.is_model_pretrained("res2net50.official_in1k")
    assert not mindcv_res2net.is_model_pretrained("nope")
    assert mindcv_res2net.get_pretrained_cfg_value("res2net50_v1b", "first_conv") == "conv1.0"
    assert mindcv_res2net.get_pretrained_cfg_value("res2net50", "no_such_key") is None
    assert mindcv_res2net.get_pretrained_cfg_value("nope", "input_size") is None


@pytest.mark.e2e
def test_list_pretrained_and_include_tags_follow_timm(monkeypatch):
    """timm test_model_inference's ``list_pretrained(filter)`` and test_model_default_cfgs'
    ``list_models(include_tags=True)``: every ``name.tag`` entry is a weight tag create_model accepts
    with pretrained=False, without downloading anything."""
    assert mindcv_res2net.list_pretrained is list_pretrained
    tagged = list_pretrained()
    assert tagged == list_models(pretrained=True, include_tags=True) == list_models(pretrained=True)
    assert len(tagged) == 26 and all(name.count(".") == 1 for name in tagged)
    assert list_pretrained("res2net50_v1b") == ["res2net50_v1b.mindcv_in1k", "res2net50_v1b.official_in1k"]
    assert list_pretrained("*dla*", exclude_filters="res2next*") == ["res2net_dla60.official_in1k"]
    assert list_models(pretrained=True, include_tags=False) == sorted({n.split(".")[0] for n in tagged})

    with_tags = list_models(include_tags=True)  # published tags, and the bare name of a model without any
    assert set(tagged) < set(with_tags)
    assert set(with_tags) - set(tagged) == {"res2net152", "res2net152_v1b", "se_res2net50"}
    for name in with_tags:  # the tag resolves to its own config (what create_model reads)
        base, _, tag = name.partition(".")
        cfg = get_pretrained_cfg(name)
        assert cfg == get_pretrained_cfg(base, tag or None)
        assert bool(cfg.get("url")) == bool(tag)

    def no_download(*args, **kwargs):
        raise AssertionError("pretrained=False must not download")

    monkeypatch.setattr(factory, "download_weights", no_download)
    for name in ("res2net50.official_in1k", "res2net50_v1b.mindcv_in1k", "paddle_res2net50_14w_8s.paddle_in1k",
                 "res2next_dla60.official_in1k"):  # one of each source and class; the rest differ only in cfg
        model = create_model(name, pretrained=False, num_classes=3)
        assert model.pretrained_cfg["tag"] == name.split(".")[1]
        assert model.pretrained_cfg["url"] == get_pretrained_cfg(name)["url"]
    with pytest.raises(ValueError, match="model 'res2net50' has no pretrained tag 'in21k'; available: "):
        create_model("res2net50.in21k")


def test_list_models_module_takes_a_list():
    """timm test_model_forward_intermediates_features' ``list_models(module=[...])``: the union of the modules."""
    dla = ["res2net_dla60", "res2next_dla60"]
    assert list_models(module=["dla"]) == list_models(module=("dla",)) == list_models(module="dla") == dla
    assert list_models(module=["dla", "res2net"]) == list_models() and len(list_models()) == 19
    assert list_models("res2net50*", module=["res2net"]) == list_models("res2net50*")
    assert list_models(module=["dla"], pretrained=True) == [
        "res2net_dla60.official_in1k", "res2next_dla60.official_in1k"]
    assert list_models(module=["dla", "resnet"]) == dla  # timm's module names add nothing, as in timm


def test_list_models_takes_none_as_no_filter_as_timm():
    every = list_models()
    assert list_models(None) == list_models(module=None) == list_models(exclude_filters=None) == every
    assert list_models(["res2net50", None]) == ["res2net50"]
    assert list_models(None, pretrained=True) == list_models(pretrained=True)
    with pytest.raises(TypeError, match=r"^list_models: filter must be a str or a list of str, got 5$"):
        list_models(5)
    with pytest.raises(TypeError, match=r"^list_models: exclude_filters must be a str or a list of str, got \[1\]$"):
        list_models(exclude_filters=[1])


# ---------------------------------------------------------------------------------------------- variants as data

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
