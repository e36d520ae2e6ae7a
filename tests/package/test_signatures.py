"""Calls read at the call site: after its first few parameters (the subject of the call: at most three), a
function of the package takes keyword-only arguments, and a True or False is never passed by position
(``export_model(name, ckpt, out, file_format="ONNX", fuse_bn=True)``, not ``..., "ONNX", 1, None, True``).
Read with ``ast``; the functions whose callers are not ours (a pickle, ``warnings``) keep their protocol."""
import ast
import os

import pytest

from mindcv_res2net import create_model
from mindcv_res2net.cli.parser import parse_settings
from mindcv_res2net.data import create_loader
from mindcv_res2net.models import get_pretrained_cfg
from helpers import PROJECT_DIR

PACKAGE = os.path.join(PROJECT_DIR, "mindcv_res2net")
MAX_POSITIONAL = 3
PROTOCOLS = {  # called positionally by code that is not ours
    ("utils/cli.py", "_one_line_warning"),  # warnings.formatwarning
    ("weights/torch_file.py", "_rebuild_tensor"),  # torch._utils._rebuild_tensor_v2, called by the pickle
    ("weights/array_pickle.py", "__init__"),  # _DType: numpy.dtype(code, align, copy), called by the pickle
    ("weights/array_pickle.py", "_frombuffer"),  # numpy.core.numeric._frombuffer(buf, dtype, shape, order), too
    ("config/recipe.py", "construct_mapping"),
    ("train/train_step.py", "construct"),  # a Cell's inputs, which MindSpore's compiled graph takes by position  # yaml's SafeLoader.construct_mapping(node, deep), called by PyYAML
}
TIMM_POSITIONAL = {"pretrained"}  # create_model(name, pretrained) and res2net50(pretrained), as timm's


def _files():
    for folder, _, names in os.walk(PACKAGE):
        for name in names:
            rel = os.path.relpath(os.path.join(folder, name), PACKAGE).replace(os.sep, "/")
            if name.endswith(".py"):
                yield rel


def _is_bool(arg: ast.arg, default) -> bool:
    annotated = arg.annotation is not None and ast.unparse(arg.annotation) == "bool"
    return annotated or (isinstance(default, ast.Constant) and isinstance(default.value, bool))


def _offences(rel: str):
    """``name(params): why`` for each function of ``rel`` that takes too much by position."""
    with open(os.path.join(PACKAGE, rel), encoding="utf-8") as f:
        tree = ast.parse(f.read())
    for node in ast.walk(tree):
        if not isinstance(node, (ast.FunctionDef, ast.AsyncFunctionDef)) or (rel, node.name) in PROTOCOLS:
            continue
        positional = node.args.posonlyargs + node.args.args
        defaults = [None] * (len(positional) - len(node.args.defaults)) + node.args.defaults
        pairs = [(a, d) for a, d in zip(positional, defaults) if a.arg not in ("self", "cls")]
        shown = f"{rel}:{node.lineno} {node.name}({', '.join(a.arg for a, _ in pairs)})"
        if len(pairs) > MAX_POSITIONAL:
            yield f"{shown}: {len(pairs)} positional parameters"
        flags = [a.arg for a, d in pairs[1:] if _is_bool(a, d) and a.arg not in TIMM_POSITIONAL]
        if flags:
            yield f"{shown}: True/False by position ({', '.join(flags)})"


def test_the_rooms_are_read():
    files = set(_files())
    assert {"models/factory.py", "deploy/export.py", "scheduler/__init__.py", "utils/download.py"} <= files


@pytest.mark.parametrize("rel", sorted(_files()))
def test_parameters_after_the_subject_are_keyword_only(rel):
    assert list(_offences(rel)) == []


def test_create_model_takes_only_the_name_and_pretrained_by_position():
    """mindcv's create_model(name, num_classes, pretrained, ...) and timm's (name, pretrained, ...) differ:
    a third positional argument would mean one thing to one user and another to the other."""
    with pytest.raises(TypeError, match="positional argument"):
        create_model("res2net50", False, 10)
    with pytest.raises(TypeError, match=r"create_model: pretrained must be True or False, got 10 \(pass num_classes"):
        create_model("res2net50", 10)


# -------------------------------------------------------------------- the data and benchmark rooms, dataclasses too


def _positional_problems(path: str) -> list:
    """Functions of ``path`` with more than 3 positional parameters (self and cls aside) or a positional one
    defaulting to a bool, and dataclasses of more than 3 fields that are not keyword-only."""
    with open(path, encoding="utf-8") as f:
        tree = ast.parse(f.read(), path)
    problems = []
    for node in ast.walk(tree):
        if isinstance(node, ast.FunctionDef):
            positional = [a.arg for a in node.args.posonlyargs + node.args.args if a.arg not in ("self", "cls")]
            bools = [d for d in node.args.defaults if isinstance(d, ast.Constant) and isinstance(d.value, bool)]
            if len(positional) > 3 or bools:
                problems.append(f"{node.name}({', '.join(positional)})")
        if isinstance(node, ast.ClassDef) and any("dataclass" in ast.unparse(d) for d in node.decorator_list):
            fields = [s for s in node.body if isinstance(s, ast.AnnAssign) and "ClassVar" not in ast.unparse(s)]
            if len(fields) > 3 and not any("kw_only=True" in ast.unparse(d) for d in node.decorator_list):
                problems.append(f"{node.name} ({len(fields)} positional fields)")
    return problems


def test_calls_into_the_data_and_benchmark_rooms_read_at_the_call_site():
    """After the first few parameters (the subject of the call), keyword-only; no positional booleans:
    ``create_loader(data, split, train=True, model_cfg=cfg)``."""
    paths = [os.path.join(PACKAGE, "cli", "benchmark.py")] + [
        os.path.join(PACKAGE, room, name) for room in ("data", "benchmark")
        for name in sorted(os.listdir(os.path.join(PACKAGE, room))) if name.endswith(".py")]
    assert {os.path.relpath(p, PACKAGE): _positional_problems(p) for p in paths if _positional_problems(p)} == {}
    with pytest.raises(TypeError):
        create_loader(parse_settings([]).data, "train", True, get_pretrained_cfg("res2net50"))
