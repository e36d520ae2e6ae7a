"""A run's stored config (config.yaml, and the config in its checkpoints): it keeps the starting weights apart
(init_ckpt_path / init_pretrained), so that validate.py never evaluates them; it round-trips through train.py
and validate.py; on resume it gives every key that may not change; the keys that may change are documented; every
shipped recipe and a stored run config load in both programs."""
import os

import pytest
import yaml
from hypothesis import given, settings, strategies as st

from helpers import PROJECT_DIR
from mindcv_res2net.cli.parser import parse_args, parse_config, parse_settings
from mindcv_res2net.config import RESUME_MAY_CHANGE, ConfigError, resumed_config, save_config, stored_config
from mindcv_res2net.deploy.validate import validate

MODEL = "res2net50_26w_4s"


def test_a_run_config_stores_its_starting_weights_apart(tmp_path):
    """config.yaml keeps the starting weights as init_ckpt_path / init_pretrained; train.py reads them back,
    validate.py never evaluates them and says what to give."""
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


def test_resume_may_change_is_documented():
    """The list of settings a resume may change is docs/training.md's."""
    page = open(os.path.join(PROJECT_DIR, "docs", "training.md")).read()
    for key in RESUME_MAY_CHANGE:
        assert f"`{key}`" in page.split("A run remembers itself", 1)[1], key


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
