"""Every flag fact is decided once: argument types and the image-size range (utils/argtypes.py), data
defaults (DataConfig), choices (the modules that implement them), defaults in --help (HelpFormatter)."""
import argparse
import dataclasses
import re

import pytest
from hypothesis import given
from hypothesis import strategies as st

from mindcv_res2net.cli import benchmark, export, reports
from mindcv_res2net.config import ConfigError
from mindcv_res2net.cli.parser import create_parser, parse_args, parse_settings
from mindcv_res2net.data import DATASETS, DataConfig
from mindcv_res2net.optim import OPTIMIZERS
from mindcv_res2net.scheduler import SCHEDULER_FLAGS, SCHEDULERS, create_scheduler
from mindcv_res2net.utils.argtypes import MAX_IMAGE_SIZE, MIN_IMAGE_SIZE, HelpFormatter, image_size
from mindcv_res2net.utils.device import AMP_LEVELS

RANGE_MESSAGE = f"must be an integer from {MIN_IMAGE_SIZE} to {MAX_IMAGE_SIZE} pixels, got"


def test_every_data_config_field_is_a_flag_with_the_same_default():
    parser = create_parser()
    for field in dataclasses.fields(DataConfig):
        assert parser.get_default(field.name) == getattr(DataConfig(), field.name), field.name


def test_the_data_settings_of_the_default_flags_are_the_default_data_config():
    assert parse_settings([]).data == DataConfig()


@pytest.mark.parametrize("flag, names", [("opt", OPTIMIZERS), ("scheduler", SCHEDULERS), ("amp_level", AMP_LEVELS),
                                         ("dataset", DATASETS)])
def test_choices_are_the_names_their_modules_implement(flag, names):
    action = next(a for a in create_parser()._actions if a.dest == flag)
    assert tuple(action.choices) == tuple(names)
    with pytest.raises(ConfigError, match=rf"^argument --{flag}: invalid choice: 'nope' \(choose from "):
        parse_args([f"--{flag}", "nope"])


# a flag of the scheduler group -> (create_scheduler's argument, a value other than the default)
_SCHEDULE_ARGUMENTS = {"min_lr": ("min_lr", 0.05), "decay_epochs": ("decay_epochs", 3),
                       "decay_rate": ("decay_rate", 0.5), "multi_step_decay_milestones": ("milestones", (2,))}


@pytest.mark.parametrize("name", SCHEDULERS)
def test_a_schedule_reads_exactly_the_flags_its_module_lists(name):
    """The table that makes a flag an error when it would be ignored is the schedules' own, and true."""
    def schedule(**changed):
        return create_scheduler(name, 0.1, steps_per_epoch=2, epochs=10, **{"decay_epochs": 4, "milestones": (3, 6),
                                                                              **changed})

    for flag, (argument, value) in _SCHEDULE_ARGUMENTS.items():
        assert (not (schedule() == schedule(**{argument: value})).all()) == (flag in SCHEDULER_FLAGS[name]), flag


@given(st.integers(min_value=-10 ** 6, max_value=10 ** 6))
def test_image_size_accepts_exactly_the_one_range(size):
    if MIN_IMAGE_SIZE <= size <= MAX_IMAGE_SIZE:
        assert image_size(str(size)) == size
    else:
        with pytest.raises(argparse.ArgumentTypeError, match=f"^{RANGE_MESSAGE} {size}$"):
            image_size(str(size))


@given(st.text(max_size=12).filter(lambda t: not t.strip().lstrip("+-").isdigit()))
def test_image_size_refuses_text_that_is_no_integer(text):
    with pytest.raises(argparse.ArgumentTypeError, match=f"^{RANGE_MESSAGE} "):
        image_size(text)


@pytest.mark.parametrize("main, argv", [
    (lambda argv: parse_args(argv), ["--image_resize", "16"]),
    (reports.summarize_main, ["--models", "res2net50", "--image_size", "16"]),
    (export.main, ["--model", "res2net50", "--ckpt_path", "x.ckpt", "--file_name", "out", "--image_size", "16"]),
    (benchmark.main, ["--image_size", "16"]),
])
def test_every_program_refuses_an_image_size_outside_the_range(main, argv):
    with pytest.raises(ConfigError, match=rf"^argument --image_(resize|size): {RANGE_MESSAGE} 16$"):
        main(argv)


@pytest.mark.parametrize("size", [MIN_IMAGE_SIZE - 1, MAX_IMAGE_SIZE + 1])
def test_export_api_refuses_an_image_size_outside_the_range(tmp_path, size):
    from mindcv_res2net.deploy.export import export_model

    message = f"^--image_size must be {MIN_IMAGE_SIZE} to {MAX_IMAGE_SIZE} pixels, got {size}$"
    with pytest.raises(ValueError, match=message):
        export_model("res2net50", str(tmp_path / "x.ckpt"), str(tmp_path / "out"), image_size=size)
    assert sorted(p.name for p in tmp_path.iterdir()) == []


def test_a_yaml_image_size_outside_the_range_names_the_file_and_key(tmp_path):
    recipe = tmp_path / "recipe.yaml"
    recipe.write_text("image_resize: 5000\n")
    with pytest.raises(ConfigError, match=rf"^config {recipe}: key 'image_resize' {RANGE_MESSAGE} 5000$"):
        parse_args(["-c", str(recipe)])


def test_help_shows_each_default_once_and_no_flag_types_it_by_hand():
    for action in create_parser()._actions:  # every flag of both programs
        if action.option_strings and action.default not in (None, "", argparse.SUPPRESS):
            assert "default" not in (action.help or ""), action.dest  # the formatter adds it
    validate_help = " ".join(create_parser(program="validate").format_help().split())
    assert validate_help.count("default mindspore") == 1 and "export on the CPU (default mindspore)" in validate_help
    parser = create_parser(program="train")
    text = " ".join(parser.format_help().split())
    assert text.count("(default 224)") == 1 and text.count("(default cosine_decay)") == 1
    assert "--lr X" in text and re.search(r"peak learning rate \(default 0\.1\)", text)


def test_help_formatter_appends_the_default_unless_the_help_explains_it():
    parser = argparse.ArgumentParser(formatter_class=HelpFormatter)
    parser.add_argument("--size", type=int, default=7, help="pixels")
    parser.add_argument("--mean", default=None, help="per channel (default: the model's)")
    text = " ".join(parser.format_help().split())
    assert "pixels (default 7)" in text and "per channel (default: the model's)" in text
    assert "(default none)" not in text
