"""How values and lists appear in messages: one formatter of a value (``utils.errors.shown``) and one of a
list of names (``utils.errors.brief``), used by every room."""
import pytest
from hypothesis import given
from hypothesis import strategies as st

from mindcv_res2net.data import checkpoint_eval
from mindcv_res2net.models import get_pretrained_cfg
from mindcv_res2net.utils.errors import BRIEF_LIMIT, brief, shown
from mindcv_res2net.weights import formats


@pytest.mark.parametrize("value, text", [
    (None, "none"), ("", "''"), ("bicubic", "bicubic"), (True, "True"), (224, "224"), (0.1 + 0.2, "0.30000000000000004"),
    ((0.5, 1.0), "0.5 1.0"), ([1, None], "1 none"), ((), "")])
def test_a_value_is_shown_as_a_flag_would_take_it(value, text):
    assert shown(value) == text


@given(st.lists(st.text(alphabet="abc_", min_size=1, max_size=5), unique=True, max_size=12))
def test_brief_lists_the_first_names_in_order_and_counts_the_rest(names):
    text = brief(names)
    listed = sorted(names)[:BRIEF_LIMIT]
    assert text.startswith(", ".join(listed))
    rest = len(names) - len(listed)
    assert text.endswith(f" and {rest} more") if rest else text == ", ".join(listed)


def test_the_weights_room_lists_names_with_the_one_formatter():
    assert formats.brief is brief


def test_an_override_of_a_runs_evaluation_shows_both_values_as_flags_take_them():
    run = dict(dataset="imagenet", image_resize=64, crop_pct=0.875, mean=None, std=None, interpolation="bilinear")
    chosen = checkpoint_eval("C", run, get_pretrained_cfg("res2net50"),
                             given=dict(mean=(120.0, 115.5, 100.25), crop_pct=0.9))
    assert set(chosen.warnings) == {"--mean 120.0 115.5 100.25 overrides the none that C was trained with",
                                    "--crop_pct 0.9 overrides the 0.875 that C was trained with"}
