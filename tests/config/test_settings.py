"""The settings are one typed, frozen value: every field is one flag (its type and default declared once, on
the field), flat configs map to and from the sections, and a misspelled field is an error a type checker sees."""
import dataclasses
import subprocess
import sys
from typing import Optional, Tuple

import pytest
from hypothesis import given, settings as hypothesis_settings, strategies as st

from helpers import PROJECT_DIR
from mindcv_res2net.cli.parser import build_parser, create_parser, parse_config, parse_settings
from mindcv_res2net.config import (FLAGS, ConfigError, ModelSettings, OptimizationSettings, RunSettings, Settings,
                                   derive_flags, flag)
from mindcv_res2net.config.settings import DATA_FLAGS, SECTION_OF
from mindcv_res2net.data import DataConfig
from mindcv_res2net.utils.argtypes import positive_int

SECTIONS = (DataConfig, ModelSettings, OptimizationSettings, RunSettings)
# the modules that read settings below cli/, and the programs that build them
TYPED_MODULES = ["mindcv_res2net/config", "mindcv_res2net/train", "mindcv_res2net/deploy/validate.py",
                 "mindcv_res2net/deploy/checkpoint_model.py", "mindcv_res2net/evaluate.py",
                 "mindcv_res2net/cli/parser.py", "mindcv_res2net/cli/train.py", "mindcv_res2net/cli/validate.py",
                 "mindcv_res2net/benchmark/plan.py", "mindcv_res2net/benchmark/runner.py",
                 "mindcv_res2net/cli/benchmark.py"]


def test_every_field_is_one_flag_and_every_flag_one_field():
    names = [f.name for section in SECTIONS for f in dataclasses.fields(section)]
    assert len(names) == len(set(names)) == len(SECTION_OF)  # no key in two sections
    assert set(FLAGS) == set(names) - {"config"}  # the -c file is the parser's own flag
    assert set(DATA_FLAGS) == {f.name for f in dataclasses.fields(DataConfig)}
    for section in SECTIONS:
        for field in dataclasses.fields(section):
            if field.name != "config":
                assert FLAGS[field.name].default == field.default, field.name
                assert create_parser().get_default(field.name) == field.default, field.name


def test_settings_are_frozen_and_a_misspelled_field_is_no_attribute():
    settings = Settings()
    with pytest.raises(dataclasses.FrozenInstanceError):
        settings.run.epoch_size = 3  # type: ignore[misc]
    with pytest.raises(AttributeError):
        settings.run.epoch_sise  # type: ignore[attr-defined]  # noqa: B018
    assert all(hasattr(section, "__slots__") for section in (Settings, ModelSettings, OptimizationSettings,
                                                             RunSettings))
    with pytest.raises(KeyError, match="not settings: epoch_sise"):
        Settings.from_mapping({"epoch_sise": 3})


@hypothesis_settings(max_examples=30, deadline=None)
@given(st.fixed_dictionaries({}, optional={
    "lr": st.floats(1e-6, 10), "epoch_size": st.integers(1, 500), "model": st.sampled_from(["res2net50", "tiny"]),
    "mean": st.none() | st.tuples(st.floats(0, 255), st.floats(0, 255), st.floats(0, 255)),
    "ema": st.booleans(), "ckpt_save_dir": st.text(max_size=10), "decay_epochs": st.none() | st.integers(1, 9)}))
def test_flat_keys_map_to_the_sections_and_back(values):
    settings = Settings.from_mapping(values)
    assert {k: settings.to_mapping()[k] for k in values} == values
    assert Settings.from_mapping(settings.to_mapping()) == settings
    assert settings.replace(lr=0.5).optimization.lr == 0.5 and settings.replace(lr=0.5).run == settings.run
    assert all(settings.value(key) == value for key, value in values.items())


def test_the_command_line_builds_the_typed_settings(tmp_path):
    recipe = tmp_path / "recipe.yaml"
    recipe.write_text("lr: 0.5\nscale: [0.2, 1.0]\nema: true\n")
    settings, given = parse_config(["-c", str(recipe), "--epoch_size", "3", "--model", "res2next50"])
    assert isinstance(settings, Settings) and given == {"config", "lr", "scale", "ema", "epoch_size", "model"}
    assert (settings.optimization.lr, settings.data.scale, settings.optimization.ema) == (0.5, (0.2, 1.0), True)
    assert (settings.run.epoch_size, settings.model.model, settings.run.config) == (3, "res2next50", str(recipe))
    assert parse_settings([]) == Settings()


def test_a_misspelled_field_is_an_error_the_type_checker_sees(tmp_path):
    """mypy finds the package's settings readers clean, and a misspelled field an error naming it."""
    misspelled = tmp_path / "misspelled.py"
    misspelled.write_text("from mindcv_res2net.benchmark.plan import BenchmarkRequest\n"
                          "from mindcv_res2net.config import Settings\n\n\n"
                          "def epochs(settings: Settings) -> int:\n"
                          "    return settings.run.epoch_sise\n\n\n"
                          "def rounds(request: BenchmarkRequest) -> int:\n"
                          "    return request.settings.round\n")
    proc = subprocess.run([sys.executable, "-m", "mypy", "--ignore-missing-imports", "--follow-imports=silent",
                           "--no-error-summary", "--cache-dir", str(tmp_path / "cache"), *TYPED_MODULES,
                           str(misspelled)], cwd=PROJECT_DIR, capture_output=True, text=True, timeout=300)
    errors = [line for line in proc.stdout.splitlines() if ": error:" in line]
    assert len(errors) == 2, proc.stdout[-3000:] + proc.stderr[-2000:]
    assert errors[0].startswith(f"{misspelled}:6: error: \"RunSettings\" has no attribute \"epoch_sise\"")
    assert errors[1].startswith(f"{misspelled}:10: error: \"BenchmarkSettings\" has no attribute \"round\"")


@dataclasses.dataclass(frozen=True, kw_only=True)
class _Toy:
    """A settings class of another program, declared as ``Settings``' sections are."""

    size: int = flag(3, "b", "a size", converter=positive_int)
    scale: Tuple[float, float] = flag((0.5, 1.0), "a", "a range")
    name: Optional[str] = flag(None, "a", "a name", after="fast")
    fast: bool = flag(False, "a", "go fast")
    sizes: Tuple[int, ...] = flag((1,), "b", "sizes, comma-separated", metavar="SIZES",
                                  converter=lambda text: tuple(int(n) for n in text.split(",")))


def test_any_settings_class_gets_its_flag_table_and_parser_from_its_fields():
    flags = derive_flags([_Toy], groups=("a", "b"), programs=("toy",))
    assert list(flags) == ["scale", "fast", "name", "size", "sizes"]  # by group, ``after`` right behind its flag
    assert {f.programs for f in flags.values()} == {("toy",)}
    parser = build_parser(flags, description="toy")
    values = vars(parser.parse_args(["--fast", "--scale", "0.1", "0.9", "--name", "none", "--sizes", "2,4"]))
    assert _Toy(**{k: tuple(v) if k == "scale" else v for k, v in values.items()}) == _Toy(
        fast=True, scale=(0.1, 0.9), sizes=(2, 4))
    assert vars(parser.parse_args([])) == {f.name: f.default for f in dataclasses.fields(_Toy)}
    text = " ".join(parser.format_help().split())
    assert "a: --scale X X a range (default 0.5 1.0) --fast [{true,false}] go fast (default false)" in text
    assert "--sizes SIZES sizes, comma-separated (default 1)" in text and "--size N a size (default 3)" in text
    with pytest.raises(ConfigError, match="^argument --size: must be a positive integer, got 0$"):
        parser.parse_args(["--size", "0"])
