"""config.py: precedence, mindcv keys, types, booleans, lists, key=value, clear errors."""
import glob
import os

import pytest
import yaml

from helpers import PROJECT_DIR
from mindcv_res2net.config import ConfigError, save_config
from mindcv_res2net.cli.parser import parse_args, parse_settings

CONFIGS = sorted(glob.glob(os.path.join(PROJECT_DIR, "configs", "res2net", "*.yaml")))

MINDCV_ASCEND_YAML = """
mode: 0
distribute: True
num_parallel_workers: 8
val_while_train: True
dataset: "imagenet"
data_dir: "/path/to/imagenet"
shuffle: True
dataset_download: False
batch_size: 32
drop_remainder: True
val_split: val
image_resize: 224
scale: [0.08, 1.0]
ratio: [0.75, 1.333]
hflip: 0.5
interpolation: "bilinear"
crop_pct: 0.875
color_jitter: 0.4
re_prob: 0.5
mixup: 0.2
model: "res2net50"
num_classes: 1000
pretrained: False
ckpt_path: ""
keep_checkpoint_max: 10
val_interval: 5
ckpt_save_dir: "./ckpt"
epoch_size: 200
dataset_sink_mode: True
amp_level: "O3"
loss: "CE"
label_smoothing: 0.1
scheduler: "cosine_decay"
min_lr: 0.0
lr: 0.1
warmup_epochs: 4
decay_epochs: 196
opt: "momentum"
momentum: 0.9
weight_decay: 0.0001
loss_scale: 1024
use_nesterov: False
filter_bias_and_bn: True
mean: [123.675, 116.28, 103.53]
std: [58.395, 57.12, 57.375]
"""


def _yaml(tmp_path, text, name="c.yaml"):
    path = tmp_path / name
    path.write_text(text)
    return str(path)


def test_mindcv_yaml_loads_unchanged(tmp_path):
    args = parse_args(["-c", _yaml(tmp_path, MINDCV_ASCEND_YAML)])
    assert args.distribute is True and args.decay_epochs == 196 and args.loss_scale == 1024.0
    assert args.scale == (0.08, 1.0) and args.mean == (123.675, 116.28, 103.53)
    assert args.amp_level == "O3" and args.filter_bias_and_bn is True and args.mixup == 0.2


def test_precedence_cli_over_yaml_over_defaults(tmp_path):
    path = _yaml(tmp_path, "lr: 0.5\nbatch_size: 8\n")
    args = parse_args(["-c", path, "--lr", "0.01"])
    assert args.lr == 0.01 and args.batch_size == 8 and args.momentum == 0.9
    assert parse_args([]).lr == 0.1


def test_booleans_lists_and_key_value():
    args = parse_args(["--pretrained", "--image_resize", "64", "dataset=cifar10", "--mean", "1", "2", "3",
                       "--scale", "0.5", "1.0", "--ema=False", "--multi_step_decay_milestones", "3", "6"])
    assert args.pretrained is True and args.ema is False and args.image_resize == 64
    assert args.dataset == "cifar10" and args.mean == (1.0, 2.0, 3.0) and args.multi_step_decay_milestones == (3, 6)
    assert parse_args(["--pretrained=False"]).pretrained is False
    assert parse_args(["--num_classes", "None"]).num_classes is None


@pytest.mark.parametrize("argv, message", [
    (["--lrr", "0.1"], r"unknown flag '--lrr' \(did you mean --lr\?\)"),
    (["lrr=0.1"], r"unknown argument 'lrr=0.1' \(did you mean lr\?\)"),
    (["--lr", "fast"], r"argument --lr: must be a number, got fast"),
    (["--pretrained=maybe"], r"expected a boolean"),
    (["--opt", "lion"], r"argument --opt: invalid choice: 'lion'"),
    (["-c", "/nonexistent/x.yaml"], r"config file not found: /nonexistent/x.yaml"),
])
def test_bad_flags_are_clear_errors(argv, message):
    with pytest.raises(ConfigError, match=message):
        parse_args(argv)


@pytest.mark.parametrize("text, message", [
    ("lrr: 0.1\n", r"config .*c\.yaml: unknown key 'lrr' \(did you mean lr\?\)"),
    ("lr: fast\n", r"config .*c\.yaml: key 'lr' must be a number, got fast"),
    ("scale: 0.5\n", r"config .*c\.yaml: key 'scale' expects a list"),
    ("scale: [0.1, 0.2, 0.3]\n", r"key 'scale' expects 2 values, got 3"),
    ("opt: lion\n", r"key 'opt' must be one of sgd, momentum, adam, adamw, rmsprop, got 'lion'"),
    ("pretrained: maybe\n", r"key 'pretrained' expected a boolean"),
    ("lr: [1\n", r"not valid YAML"),
    ("- 1\n- 2\n", r"expected key: value pairs"),
])
def test_bad_yaml_is_a_clear_error(tmp_path, text, message):
    with pytest.raises(ConfigError, match=message):
        parse_args(["-c", _yaml(tmp_path, text)])


def test_saved_config_loads_back(tmp_path):
    settings = parse_settings(["--model", "res2next50", "--scale", "0.2", "1.0", "--mean", "1", "2", "3"])
    path = save_config(settings, str(tmp_path / "run" / "config.yaml"))
    assert parse_settings(["-c", path]) == settings.replace(config=path)


def test_every_shipped_config_parses_and_is_complete():
    assert len(CONFIGS) >= 17
    models = set()
    for path in CONFIGS:
        args = parse_args(["-c", path])
        models.add(args.model)
        with open(path) as f:
            assert yaml.safe_load(f)["model"] == args.model
    assert len(models) == 19


@pytest.mark.parametrize("flag", ["--batch_size", "--gradient_accumulation_steps", "--val_interval",
                                  "--ckpt_save_interval", "--keep_checkpoint_max", "--epoch_size",
                                  "--num_parallel_workers"])
@pytest.mark.parametrize("value", ["0", "-3"])
def test_counts_must_be_positive(flag, value):
    with pytest.raises(ConfigError, match=rf"^argument {flag}: must be a positive integer, got {value}$"):
        parse_args([flag, value])


@pytest.mark.parametrize("value", ["nan", "inf", "-inf"])
def test_learning_rate_must_be_finite(value):
    with pytest.raises(ConfigError, match=rf"^argument --lr: must be a finite number, got {value}$"):
        parse_args([f"--lr={value}"])


@pytest.mark.parametrize("text, message", [
    ("batch_size: 32.5\n", "key 'batch_size' must be a positive integer, got 32.5"),
    ("batch_size: 32.0\n", "key 'batch_size' must be a positive integer, got 32.0"),
    ("batch_size: 0\n", "key 'batch_size' must be a positive integer, got 0"),
    ("epoch_size: true\n", "key 'epoch_size' must be a positive integer, got true"),
    ("lr: true\n", "key 'lr' must be a number, got true"),
    ("lr: .nan\n", "key 'lr' must be a finite number, got nan"),
    ("batch_size:\n", r"key 'batch_size' needs a value \(default 32\)"),
    ("scale: [0.08, yes]\n", "key 'scale' must be a number, got true"),
])
def test_yaml_values_of_the_wrong_type_fail_as_on_the_command_line(tmp_path, text, message):
    with pytest.raises(ConfigError, match=rf"^config .*c\.yaml: {message}$"):
        parse_args(["-c", _yaml(tmp_path, text)])
    assert parse_args(["-c", _yaml(tmp_path, "lr: 1\nbatch_size: 8\n")]).lr == 1.0  # an int is a fine float


@pytest.mark.e2e
def test_train_cli_rejects_impossible_values_before_reading_data():
    from helpers.programs import assert_quiet_exit, run

    proc = run(["train.py", "--dataset", "imagenet", "--data_dir", "/no/such/dir", "--batch_size", "0"])
    assert proc.returncode == 2 and proc.stderr == "error: argument --batch_size: must be a positive integer, got 0\n"
    assert_quiet_exit(proc)


def test_validate_lists_and_takes_only_its_flags_while_yaml_keeps_every_key(tmp_path):
    """validate.py's --help and command line have only what validation uses; train.py refuses the
    validate-only flags; one YAML recipe (training keys included) still drives both."""
    from mindcv_res2net.cli.parser import create_parser

    validate_help = create_parser("Validate", "validate").format_help()
    train_help = create_parser("Train", "train").format_help()
    for flag in ("--lr", "--opt", "--ema", "--scheduler", "--epoch_size", "--mixup", "--train_split"):
        assert flag not in validate_help and flag in train_help, flag
    for flag in ("--engine", "--onnx_path"):
        assert flag in validate_help and flag not in train_help, flag
    assert "optimizer:" not in validate_help and "scheduler:" not in validate_help  # no empty headings
    with pytest.raises(ConfigError, match=r"^--lr is a flag of train.py, not of validate.py"):
        parse_args(["--lr", "0.1"], program="validate")
    with pytest.raises(ConfigError, match=r"^--engine is a flag of validate.py, not of train.py"):
        parse_args(["--engine", "onnxruntime"], program="train")
    recipe = tmp_path / "recipe.yaml"
    recipe.write_text("dataset: digits\nlr: 0.05\nopt: adamw\nema: true\nimage_resize: 32\n")
    args = parse_args(["-c", str(recipe), "--image_resize", "64"], program="validate")
    assert args.lr == 0.05 and args.image_resize == 64


def test_help_shows_defaults_boolean_values_and_the_key_value_form():
    from mindcv_res2net.cli.parser import create_parser

    text = " ".join(create_parser("Train", "train").format_help().split())
    assert "--ema [{true,false}]" in text and "[--ema [EMA]]" not in text
    for expected in ("--scale X X RandomResizedCrop area range (default 0.08 1.0)",
                     "--ratio X X RandomResizedCrop aspect range (default 0.75 1.333)",
                     "brightness/contrast/saturation jitter (default none)", "mixup alpha (0: off) (default 0.0)",
                     "dropout before the classifier (default none)", "1 keeps grey images grey (default 3)",
                     "key=value", "--save_optimizer_state [{true,false}]"):
        assert expected in text, expected
    assert len(create_parser("Train", "train").format_help().splitlines()) < 160
