"""Speed measurements behind ``tools/benchmark.py``: each configuration timed in its own process.

Layer: above ``train`` and ``deploy`` (it times the training script's train step and the ONNX export), below
``cli`` (``cli/benchmark.py`` builds its parser from the flags declared here). Modules: ``plan`` (the typed
settings whose fields are the flags, the request checked from them once, the configurations), ``timing``,
``measure_model``, ``measure_onnx``, ``measure_data``, ``mindcv_compare`` (mindcv's side), ``machine``,
``tables`` and ``runner`` (worker processes, rounds, the report).
"""
