"""tools/make_digit_scans.py: PNG files of the held-out digit scans, read back by predict's reader as the pixels a
digits run validates on; a folder holding files and a bad count are one-line errors that write nothing."""
import os

import numpy as np

from helpers.programs import load_script, run_tool


def test_digit_scans_are_the_held_out_scans_as_predict_reads_them(tmp_path):
    from mindcv_res2net.data.datasets import dataset_spec
    from mindcv_res2net.data.image_files import load_rgb
    from mindcv_res2net.data.sources import SourceOptions, digits_source

    written = load_script("tools/make_digit_scans.py").make_digit_scans(str(tmp_path / "scans"), per_digit=2)
    val = digits_source(dataset_spec("digits"), "val", SourceOptions())
    assert sorted(os.listdir(tmp_path / "scans")) == sorted(os.path.basename(p) for p in written)
    assert [os.path.basename(p)[0] for p in written] == [str(d) for d in range(10) for _ in range(2)]
    for path in written:
        digit, index = (int(part) for part in os.path.basename(path)[:-4].split("_"))
        assert val.labels[index] == digit
        assert np.array_equal(load_rgb(path), np.repeat(val.images[index], 3, axis=-1))  # (8, 8, 3) uint8


def test_digit_scans_refuse_a_folder_holding_files_and_a_bad_count(tmp_path, capsys):
    (tmp_path / "scans").mkdir()
    (tmp_path / "scans" / "mine.png").write_bytes(b"not theirs")
    code, err = run_tool("make_digit_scans", [str(tmp_path / "scans")], capsys)
    assert code == 2 and err == f"error: {tmp_path / 'scans'} already holds files; give a new or empty folder\n"
    assert os.listdir(tmp_path / "scans") == ["mine.png"]
    code, err = run_tool("make_digit_scans", [str(tmp_path / "new"), "--per_digit", "0"], capsys)
    assert code == 2 and err.startswith("error: --per_digit must be from 1 to ") and err.endswith(", got 0\n")
    assert not (tmp_path / "new").exists()
