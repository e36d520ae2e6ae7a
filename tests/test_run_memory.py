"""A run remembers itself (issue 23): --resume takes the run's settings from its checkpoint, a run's stored
config never names its starting weights as a checkpoint to validate, flags that would be ignored are refused,
and messages say what is wrong."""
import os
import shutil

import pytest
import yaml
from hypothesis import given, settings, strategies as st

from mindcv_res2net.cli.train import main as train_main
from mindcv_res2net.config import RESUME_MAY_CHANGE, ConfigError, resumed_config, save_config, stored_config
from mindcv_res2net.cli.parser import parse_args, parse_config, parse_settings
from mindcv_res2net.data.loader import create_source
from mindcv_res2net.data.image_files import DatasetError
from mindcv_res2net.deploy.validate import validate
from mindcv_res2net.utils.cli import run_cli
from mindcv_res2net.weights import CheckpointError, read_checkpoint, read_checkpoint_metadata
from conftest import PROJECT_DIR, run, run_tool

MODEL = "res2net50_26w_4s"
# a run whose settings differ from train.py's defaults where resuming must keep them
TINY = ["--mode", "1", "--model", MODEL, "--image_resize", "32", "--num_samples", "16", "--batch_size", "16",
        "--num_parallel_workers", "1", "--opt", "adamw", "--lr", "0.001", "--seed", "5", "--val_while_train", "false"]


def _cli(main, argv, capsys):
    """``main(argv)`` through ``run_cli``, as the console script runs it: (exit code, stderr)."""
    capsys.readouterr()
    with pytest.raises(SystemExit) as exit_info:
        run_cli(lambda: main(argv))
    return exit_info.value.code, capsys.readouterr().err


def _snapshot(folder):
    return {name: open(os.path.join(folder, name), "rb").read() for name in sorted(os.listdir(folder))}


@pytest.fixture(scope="module")
def one_epoch_run(tmp_path_factory):
    """A run folder after one epoch of TINY (trained once; tests work on copies)."""
    import mindspore as ms

    ms.set_context(mode=ms.PYNATIVE_MODE)
    out = str(tmp_path_factory.mktemp("runs") / "run")
    train_main(TINY + ["--epoch_size", "1", "--ckpt_save_dir", out])
    return out


@pytest.fixture
def run_copy(one_epoch_run, tmp_path):
    out = str(tmp_path / "run")
    shutil.copytree(one_epoch_run, out)
    return out


# ---------------------------------------------------------------------------------------------- resume


@pytest.mark.e2e
def test_resume_auto_alone_continues_the_run_with_its_own_settings(run_copy, pynative):
    """Issue point 2: ``--ckpt_save_dir RUN --resume auto``, no --model, no -c, continues the run; a flag that
    may change (--epoch_size) applies and the log says so; a flag given again that agrees is fine."""
    first = read_checkpoint_metadata(os.path.join(run_copy, f"{MODEL}-1_1.ckpt"))
    train_main(["--ckpt_save_dir", run_copy, "--resume", "auto", "--epoch_size", "2", "--opt", "adamw"])
    second = read_checkpoint_metadata(os.path.join(run_copy, f"{MODEL}-2_1.ckpt"))
    assert second["run_id"] == first["run_id"] and second["epoch"] == 2
    assert {k: v for k, v in second["config"].items() if k not in ("epoch_size", "resume", "ckpt_save_dir")} == \
        {k: v for k, v in first["config"].items() if k not in ("epoch_size", "resume", "ckpt_save_dir")}
    assert second["config"]["epoch_size"] == 2 and second["config"]["lr"] == 0.001
    log = open(os.path.join(run_copy, "train.log")).read().splitlines()
    noted = [line for line in log if "resumed with" in line]
    assert len(noted) == 1 and noted[0].endswith("resumed with the run's own settings, except: epoch_size 1 -> 2")
    assert [line.split(",")[0] for line in open(os.path.join(run_copy, "metrics.csv"))] == ["epoch", "1", "2"]


@pytest.mark.e2e
@pytest.mark.parametrize("argv, message", [
    (["--image_resize", "64"], "--image_resize 64 contradicts the resumed run's image_resize 32"),
    (["--model", "res2net50"], f"--model res2net50 contradicts the resumed run's model {MODEL}"),
    (["--opt", "sgd"], "--opt sgd contradicts the resumed run's opt adamw"),
    (["--lr", "0.1"], "--lr 0.1 contradicts the resumed run's lr 0.001"),
    (["--num_classes", "7"], "--num_classes 7 contradicts the resumed run's num_classes 10"),  # the digits run's
])
def test_a_flag_that_contradicts_the_run_is_refused_naming_both_values(run_copy, capsys, argv, message):
    before = _snapshot(run_copy)
    code, err = _cli(train_main, ["--ckpt_save_dir", run_copy, "--resume", "auto", "--epoch_size", "2"] + argv, capsys)
    assert code == 2 and err.count("\n") == 1, err
    source = os.path.join(run_copy, "run.json" if argv[0] == "--model" else f"{MODEL}-1_1.ckpt")
    assert err == (f"error: {message} ({source}); drop it to continue the run, or start a new run in "
                   "another --ckpt_save_dir\n")
    assert _snapshot(run_copy) == before


@pytest.mark.e2e
def test_a_yaml_value_that_contradicts_the_run_is_refused(run_copy, tmp_path, capsys):
    recipe = tmp_path / "recipe.yaml"
    recipe.write_text("label_smoothing: 0.1\nepoch_size: 3\n")
    code, err = _cli(train_main, ["-c", str(recipe), "--ckpt_save_dir", run_copy, "--resume", "auto"], capsys)
    assert code == 2 and err.startswith("error: --label_smoothing 0.1 contradicts the resumed run's label_smoothing "
                                        "0.0 (")


def test_resume_before_the_first_checkpoint_reads_config_yaml(tmp_path, capsys):
    """A run killed before its first checkpoint: its config.yaml is the run's settings."""
    from mindcv_res2net.train.run_record import RunRecord, write_run_record

    out = tmp_path / "run"
    config = save_config(parse_settings(TINY), str(out / "config.yaml"))
    write_run_record(RunRecord("killedrun123", MODEL, "2025-01-01T00:00:00+00:00", "running"), str(out / "run.json"))
    code, err = _cli(train_main, ["--ckpt_save_dir", str(out), "--resume", "auto", "--seed", "6"], capsys)
    assert code == 2 and err == (f"error: --seed 6 contradicts the resumed run's seed 5 ({config}); drop it to "
                                 "continue the run, or start a new run in another --ckpt_save_dir\n")


@pytest.mark.e2e
def test_a_resumed_run_checks_ignored_flags_with_its_own_settings(run_copy, capsys):
    """--data_dir may change on resume, but this run reads digits: the flag would be ignored."""
    code, err = _cli(train_main, ["--ckpt_save_dir", run_copy, "--resume", "auto", "--data_dir", "/moved"], capsys)
    assert code == 2 and err == ("error: --data_dir /moved: would be ignored: --dataset digits (the default) reads no "
                                 "folder; for a folder of <split>/<class>/<image> files add --dataset imagefolder\n")


@pytest.mark.e2e
def test_resume_path_and_the_run_config_agree_with_the_run(run_copy, capsys):
    """``-c RUN/config.yaml --resume PATH`` (every key given) agrees with the run's checkpoint."""
    checkpoint = os.path.join(run_copy, f"{MODEL}-1_1.ckpt")
    args, given = parse_config(["-c", os.path.join(run_copy, "config.yaml"), "--resume", checkpoint], program="train")
    stored = read_checkpoint_metadata(checkpoint)["config"]
    from mindcv_res2net.train.run_folder import run_metadata

    merged, notes = resumed_config(args, given, run_metadata({"config": stored}, checkpoint)["config"],
                                   origin=checkpoint)
    assert notes == [] and merged.model.model == MODEL and merged.data.image_resize == 32
    assert merged.run.resume == checkpoint


def test_resume_may_change_is_documented():
    """The list of settings a resume may change is docs/training.md's."""
    page = open(os.path.join(PROJECT_DIR, "docs", "training.md")).read()
    for key in RESUME_MAY_CHANGE:
        assert f"`{key}`" in page.split("A run remembers itself", 1)[1], key


# ---------------------------------------------------------------------------------------------- starting weights


def test_a_run_config_stores_its_starting_weights_apart(tmp_path):
    """Issue point 5: config.yaml keeps the starting weights as init_ckpt_path / init_pretrained; train.py
    reads them back, validate.py never evaluates them and says what to give."""
    path = str(tmp_path / "config.yaml")
    save_config(parse_settings(["--ckpt_path", "/w/start.pth", "--dataset", "imagefolder", "--data_dir", "/p"]), path)
    stored = yaml.safe_load(open(path))
    assert stored["init_ckpt_path"] == "/w/start.pth" and stored["init_pretrained"] is False
    assert "ckpt_path" not in stored and "pretrained" not in stored
    assert parse_args(["-c", path], program="train").ckpt_path == "/w/start.pth"
    settings, given = parse_config(["-c", path], program="validate")
    assert settings.model.ckpt_path == "" and settings.model.pretrained is False
    with pytest.raises(ValueError, match=rf"^validate.py needs --ckpt_path FILE or --pretrained \(it never evaluates "
                                         rf"random weights\); {path} names no checkpoint to validate \(a run's "
                                         r"config.yaml keeps only the weights it started from\): give --ckpt_path "
                                         r"RUN/res2net50-best.ckpt$"):
        validate(settings, given)
    assert parse_args(["-c", path, "--ckpt_path", "/w/run-best.ckpt"], program="validate").ckpt_path == \
        "/w/run-best.ckpt"


def test_both_starting_weight_keys_are_refused(tmp_path):
    path = tmp_path / "both.yaml"
    path.write_text("ckpt_path: /a.ckpt\ninit_ckpt_path: /b.ckpt\n")
    with pytest.raises(ConfigError, match=rf"^config {path}: keys 'ckpt_path' and 'init_ckpt_path' both name "
                                          r"starting weights; keep one$"):
        parse_args(["-c", str(path)], program="train")


@settings(max_examples=40, deadline=None)
@given(ckpt_path=st.text(st.characters(blacklist_categories=("Cs", "Cc")), max_size=30)
       .filter(lambda s: s.strip().lower() not in ("none", "null")),
       pretrained=st.booleans(), lr=st.floats(1e-6, 10), epochs=st.integers(1, 500))
def test_stored_config_round_trip(tmp_path_factory, ckpt_path, pretrained, lr, epochs):
    """Any run's stored config loads back in train.py as the run's settings, and in validate.py without
    its starting weights."""
    argv = ["--lr", repr(lr), "--epoch_size", str(epochs), f"--ckpt_path={ckpt_path}", f"--pretrained={pretrained}"]
    settings = parse_settings(argv)
    path = str(tmp_path_factory.mktemp("cfg") / "config.yaml")
    save_config(settings, path)
    assert parse_settings(["-c", path], program="train") == settings.replace(config=path)
    checked = parse_args(["-c", path], program="validate")
    assert (checked.ckpt_path, checked.pretrained, checked.lr) == ("", False, lr)
    assert stored_config(settings)["init_ckpt_path"] == ckpt_path


@settings(max_examples=40, deadline=None)
@given(st.sets(st.sampled_from(sorted(RESUME_MAY_CHANGE | {"config", "resume", "ckpt_save_dir"}))))
def test_resumed_config_takes_every_other_key_from_the_run(keys):
    """Keys that may change apply when given; every other key is the run's, given or not (agreeing)."""
    stored = vars(parse_args(["--model", MODEL, "--lr", "0.003", "--epoch_size", "5", "--batch_size", "8"]))
    settings = parse_settings(["--epoch_size", "9", "--batch_size", "4", "--resume", "auto"])
    merged, notes = resumed_config(settings, frozenset(keys), stored, origin="x.ckpt")
    args = vars(parse_args(["--epoch_size", "9", "--batch_size", "4", "--resume", "auto"]))
    for key, value in merged.to_mapping().items():
        expected = args[key] if key in keys or key in ("config", "resume", "resume_opt", "ckpt_save_dir",
                                                                   "engine", "onnx_path") else stored[key]
        assert value == expected, key
    assert notes == [f"{k} {stored[k]} -> {args[k]}" for k in ("batch_size", "epoch_size") if k in keys]


# ---------------------------------------------------------------------------------------------- ignored flags

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


def test_every_shipped_recipe_and_a_stored_run_config_load(tmp_path):
    import glob

    recipes = glob.glob(os.path.join(PROJECT_DIR, "configs", "**", "*.yaml"), recursive=True)
    assert recipes
    stored = str(tmp_path / "config.yaml")  # a run's config.yaml holds every key
    save_config(parse_settings(["--dataset", "imagefolder", "--data_dir", "/p", "--ema", "--ema_decay", "0.99",
                                "--pretrained"]), stored)
    for path in recipes + [stored]:
        for program in ("train", "validate"):
            parse_args(["-c", path], program=program)


@pytest.mark.e2e
def test_data_dir_without_a_dataset_is_one_line_from_train_py():
    proc = run(["train.py", "--data_dir", "/my/photos", "--epoch_size", "1"])
    assert proc.returncode == 2 and proc.stdout == ""
    assert proc.stderr == ("error: --data_dir /my/photos: would be ignored: --dataset digits (the default) reads no "
                           "folder; for a folder of <split>/<class>/<image> files add --dataset imagefolder\n")


# ---------------------------------------------------------------------------------------------- messages


def test_a_directory_where_a_file_is_expected_says_so(tmp_path, capsys):
    folder = str(tmp_path)
    with pytest.raises(CheckpointError, match=rf"^checkpoint {folder}: is a directory, not a weight file$"):
        read_checkpoint(folder)
    code, err = _cli(train_main, ["--resume", folder, "--ckpt_save_dir", str(tmp_path / "run")], capsys)
    assert code == 2 and err == (f"error: --resume {folder}: is a directory; give a checkpoint file, or "
                                 f"--ckpt_save_dir {folder} --resume auto for its newest\n")
    code, err = _cli(train_main, ["-c", folder], capsys)
    assert code == 2 and err == (f"error: config {folder}: is a directory, not a YAML file (a run's settings "
                                 f"are in {folder}/config.yaml)\n")
    code, err = _cli(train_main, ["--ckpt_path", folder, "--ckpt_save_dir", str(tmp_path / "run"), "--image_resize",
                                  "32", "--num_samples", "16", "--batch_size", "16"], capsys)
    assert code == 2 and err == f"error: checkpoint {folder}: is a directory, not a weight file\n"
    assert sorted(os.listdir(folder)) == []  # no run folder left behind


def test_data_dir_inside_the_split_folder_gets_the_layout(tmp_path):
    (tmp_path / "photos" / "train" / "cat").mkdir(parents=True)
    inside = str(tmp_path / "photos" / "train")
    with pytest.raises(DatasetError, match=rf"^--data_dir {inside}: has no train/ folder, but {tmp_path}/photos has: "
                                           rf"--data_dir is the folder above the splits \({tmp_path}/photos, holding "
                                           r"train/<class>/<image>\), not a split folder$"):
        create_source("imagefolder", "train", inside)


def test_convert_weights_names_an_unknown_flag(capsys):
    code, err = run_tool("convert_weights", ["a.pth", "b.ckpt", "--modle", "res2net50"], capsys)
    assert code == 2 and err == "error: unknown flag '--modle' (did you mean --model?)\n"


def test_plot_metrics_takes_the_run_metrics_file(tmp_path, capsys):
    missing = str(tmp_path / "run" / "metrics.csv")
    code, err = run_tool("plot_metrics", [missing], capsys)
    assert code == 2 and err == (f"error: {missing}: file not found (give a train.py --ckpt_save_dir holding "
                                 "metrics.csv, or that metrics.csv)\n")


def test_pretrained_offline_leaves_no_run_folder(tmp_path, capsys, monkeypatch, pynative):
    """The download fails (a proxy on a closed port: no network) before the run writes anything."""
    monkeypatch.setenv("MINDCV_RES2NET_CACHE", str(tmp_path / "cache"))
    for name in ("https_proxy", "HTTPS_PROXY", "http_proxy", "HTTP_PROXY"):
        monkeypatch.setenv(name, "http://127.0.0.1:9")
    monkeypatch.delenv("no_proxy", raising=False)
    monkeypatch.delenv("NO_PROXY", raising=False)
    out = tmp_path / "run"
    code, err = _cli(train_main, ["--pretrained", "--ckpt_save_dir", str(out), "--image_resize", "32",
                                  "--num_samples", "16", "--batch_size", "16", "--mode", "1"], capsys)
    assert code == 2 and err.startswith("error: https://") and "cannot connect" in err and err.count("\n") == 1
    assert not out.exists()


def test_onnx_and_labels_directories_say_so(tmp_path):
    from mindcv_res2net.deploy.onnx_runtime import OnnxClassifier
    from mindcv_res2net.deploy.predict import read_labels

    with pytest.raises(FileNotFoundError, match=rf"^--onnx_path {tmp_path}: is a directory, not an .onnx file$"):
        OnnxClassifier(str(tmp_path))
    with pytest.raises(IsADirectoryError, match=rf"^--labels {tmp_path}: is a directory, not a file of class names$"):
        read_labels(str(tmp_path))


@pytest.mark.e2e
def test_validate_honours_a_flag_typed_at_its_default_value(run_copy, capsys, pynative):
    """A flag the user typed overrides the run's setting even when it equals the parser default: the run
    trained at 32 px, so an explicit --image_resize 224 evaluates at 224 and says so in a warning."""
    from mindcv_res2net.cli.validate import main as validate_main

    with pytest.warns(UserWarning, match=r"^--image_resize 224 overrides the 32 that .* was trained with$"):
        code, err = _cli(validate_main, ["--ckpt_path", run_copy, "--image_resize", "224"], capsys)
    assert code == 0 and "evaluating at 224 px" in err, err
