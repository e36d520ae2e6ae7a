"""Speed measurements behind ``tools/benchmark.py``: each configuration timed in its own process.

Layer: above ``engine`` (it times the training script's train step and the ONNX export), below ``cli``
(``cli/benchmark.py`` is its argparse front). Modules: ``plan`` (the configurations), ``timing``,
``measure_model``, ``measure_onnx``, ``measure_data``, ``mindcv_compare`` (mindcv's side),
``machine``, ``tables`` and ``runner`` (worker processes, rounds, the report).
"""
