"""The runnable backbone example (docs/export_and_predict.md) trains in Graph mode and exits quietly."""
import math
import re

import pytest

from helpers.programs import assert_quiet_exit, run

pytestmark = pytest.mark.e2e


def test_backbone_example_trains_in_graph_mode():
    proc = run(["examples/backbone_features.py", "--image_size", "64", "--steps", "2"])
    assert proc.returncode == 0, proc.stderr[-2000:]
    assert_quiet_exit(proc)
    assert "layer2: 512 ch, stride 8, layer3: 1024 ch, stride 16, layer4: 2048 ch, stride 32" in proc.stdout
    losses = [float(v) for v in re.findall(r"step \d: loss ([\d.]+)", proc.stdout)]
    assert len(losses) == 2 and all(math.isfinite(v) for v in losses)
    assert "logits: (2, 5, 8, 8)" in proc.stdout
