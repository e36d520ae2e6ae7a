"""A flag that would be ignored is an error, never silence: on the command line and as a YAML value other than the
default, each names the flag, its value and why it would be ignored; the same flags where they are read, or at
their defaults, are accepted."""
import pytest
import yaml

from helpers.programs import run
from mindcv_res2net.cli.parser import parse_args
from mindcv_res2net.config import ConfigError

IGNORED = [  # (flags, the refusal after "error: ")
    (["--data_dir", "/my/photos"], "--data_dir /my/photos: would be ignored: --dataset digits (the default) reads no "
                                   "folder; for a folder of <split>/<class>/<image> files add --dataset imagefolder"),
    (["--dataset", "mnist", "--dataset_download"], "--dataset_download True: would be ignored: only cifar10 and "
                                                   "cifar100 are downloaded"),
    (["--val_while_train", "false", "--val_interval", "2"], "--val_interval 2: would be ignored: --val_while_train "
                                                            "is false"),
    (["--cutmix_prob", "0.5"], "--cutmix_prob 0.5: would be ignored: neither --mixup nor --cutmix is on"),
    (["--skip_corrupt_images"], "--skip_corrupt_images True: would be ignored: only image folders are decoded "
                                "(--dataset imagenet or imagefolder)"),
    (["--hflip", "0"], "--hflip 0.0: would be ignored: --dataset digits/mnist/fashion_mnist is trained without "
                       "augmentation"),
    (["--dataset", "cifar10", "--color_jitter", "0.4"], "--color_jitter 0.4: would be ignored: only image folders "
                                                        "(--dataset imagenet or imagefolder) get this augmentation"),
    (["--scale", "0.5", "1"], "--scale 0.5 1.0: would be ignored: only image folders (--dataset imagenet or "
                              "imagefolder) get this augmentation"),
    (["--dataset", "mnist", "--re_prob", "0.25"], "--re_prob 0.25: would be ignored: only image folders (--dataset "
                                                  "imagenet or imagefolder) get this augmentation"),
    (["--re_scale", "0.1", "0.2"], "--re_scale 0.1 0.2: would be ignored: --re_prob is 0 (random erasing off)"),
    (["--re_ratio", "0.5", "2"], "--re_ratio 0.5 2.0: would be ignored: --re_prob is 0 (random erasing off)"),
    (["--re_value", "1"], "--re_value 1.0: would be ignored: --re_prob is 0 (random erasing off)"),
    (["--re_max_attempts", "3"], "--re_max_attempts 3: would be ignored: --re_prob is 0 (random erasing off)"),
    (["--ema_decay", "0.99"], "--ema_decay 0.99: would be ignored: --ema is off"),
    (["--clip_value", "5"], "--clip_value 5.0: would be ignored: --clip_grad is off"),
    (["--opt", "adam", "--momentum", "0.8"], "--momentum 0.8: would be ignored: only --opt sgd, momentum and "
                                             "rmsprop use it"),
    (["--opt", "adamw", "--use_nesterov"], "--use_nesterov True: would be ignored: only --opt sgd and momentum use it"),
    (["--eps", "1e-6"], "--eps 1e-06: would be ignored: only --opt adam, adamw and rmsprop use it"),
    (["--scheduler", "constant", "--min_lr", "0.01"], "--min_lr 0.01: would be ignored: only --scheduler "
                                                      "cosine_decay uses it"),
    (["--scheduler", "multi_step_decay", "--decay_epochs", "3"], "--decay_epochs 3: would be ignored: only "
                                                                 "--scheduler cosine_decay and step_decay use it"),
    (["--decay_rate", "0.5"], "--decay_rate 0.5: would be ignored: only --scheduler step_decay and "
                              "multi_step_decay use it"),
    (["--multi_step_decay_milestones", "2", "4"], "--multi_step_decay_milestones 2 4: would be ignored: only "
                                                  "--scheduler multi_step_decay uses it"),
    (["--warmup_factor", "0.1"], "--warmup_factor 0.1: would be ignored: --warmup_epochs is 0"),
    (["--resume_opt"], "--resume_opt True: would be ignored: it restores the state of --ckpt_path, which is not "
                       "given"),
    (["--enable_modelarts"], "--enable_modelarts True: would be ignored: ModelArts is not supported"),
    (["--ckpt_save_policy", "top_k"], "--ckpt_save_policy top_k: would be ignored: the newest --keep_checkpoint_max "
                                      "checkpoints are kept, and the best one always (top_k is not supported)"),
    (["--aug_repeats", "1"], "--aug_repeats 1: would be ignored: repeated augmentation is not supported; use 0"),
    (["--aug_repeats", "-2"], "--aug_repeats -2: would be ignored: repeated augmentation is not supported; use 0"),
]


@pytest.mark.parametrize("flags, message", IGNORED,
                         ids=[[f for f in case[0] if f.startswith("--")][-1][2:] for case in IGNORED])
def test_a_flag_that_would_be_ignored_is_refused(tmp_path, flags, message):
    """On the command line, and as a YAML value other than the default."""
    with pytest.raises(ConfigError, match=f"^{message.replace('(', '.').replace(')', '.')}$"):
        parse_args(flags, program="train")
    recipe = tmp_path / "recipe.yaml"
    values = parse_args(flags)
    keys = [flag[2:] for flag in flags if flag.startswith("--")]
    recipe.write_text(yaml.safe_dump({k: list(v) if isinstance(v, tuple) else v
                                      for k, v in vars(values).items() if k in keys}))
    with pytest.raises(ConfigError, match=f"^{message.replace('(', '.').replace(')', '.')}$"):
        parse_args(["-c", str(recipe)], program="train")


def test_the_same_flags_where_they_are_read_and_at_their_defaults_are_accepted():
    for flags in (["--dataset", "imagefolder", "--data_dir", "/p"], ["--dataset", "cifar10", "--dataset_download"],
                  ["--mixup", "0.2", "--cutmix_prob", "0.5"], ["--dataset", "imagenet", "--re_prob", "0.25", "--re_value", "1", "--auto_augment", "randaug",
                   "--color_jitter", "0.4", "--scale", "0.5", "1", "--vflip", "0.5", "--skip_corrupt_images"],
                  ["--dataset", "cifar10", "--hflip", "0"],
                  ["--ema", "--ema_decay", "0.99"], ["--clip_grad", "--clip_value", "5"],
                  ["--opt", "adam", "--eps", "1e-6"], ["--scheduler", "step_decay", "--decay_rate", "0.5"],
                  ["--warmup_epochs", "1", "--warmup_factor", "0.1"], ["--ckpt_path", "/w.ckpt", "--resume_opt"],
                  ["--ema_decay", "0.9999", "--aug_repeats", "0", "--ckpt_save_policy", "latest_k",
                   "--enable_modelarts", "false", "--data_dir", ""]):
        parse_args(flags, program="train")


@pytest.mark.e2e
def test_data_dir_without_a_dataset_is_one_line_from_train_py():
    proc = run(["train.py", "--data_dir", "/my/photos", "--epoch_size", "1"])
    assert proc.returncode == 2 and proc.stdout == ""
    assert proc.stderr == ("error: --data_dir /my/photos: would be ignored: --dataset digits (the default) reads no "
                           "folder; for a folder of <split>/<class>/<image> files add --dataset imagefolder\n")
