"""Res2Net, Res2Net-v1b, Res2NeXt, Res2Net-DLA and PaddleClas' Res2Net for MindSpore, equal to the
official networks; timm's and mindcv's model API (``create_model``, ``list_models`` ...).

Layers, from the bottom; a module imports only modules of its own layer or of layers below it (arrows
point down), and outside ``cli`` never one of the package's own modules inside a function:

- ``_onednn``: oneDNN set-up, first (before mindspore loads);
- ``utils``: file I/O (atomic writes, output checks), downloads, logging, device, argument types;
- ``weights``: weight files: readers, writer, name maps, checkpoint layout;
- ``models``: blocks, networks, registry, ``create_model``;
- ``loss``, ``optim``, ``scheduler``: side by side;
- ``data``: the data sets as data (``datasets``: one entry each), their readers, image files, transforms,
  loader, evaluation preprocessing;
- ``config``: the typed settings of train.py and validate.py (data, model, optimization, run), each field
  with its flag; the flag table derived from them; YAML recipes and stored configs read with it;
- ``evaluate``: the evaluation loop and the input normalisation of the compiled steps, shared by training
  and validation;
- ``train``: the training job: its plan (decided once), run folder and run.json, train step, training state
  and stop signals;
- ``deploy``: using a trained network: which network a checkpoint holds, validation, prediction, weight
  conversion, export (MINDIR, ONNX), INT8 quantization, the ONNX Runtime engine;
- ``benchmark``: speed and memory measurements;
- ``cli``: the programs and every command-line parser (may defer imports, for a fast ``--help``).

``mindcv_plugin`` and this ``__init__`` import only from the layers below them; ``tools/``, ``train.py``,
``validate.py`` and ``config.py`` are thin wrappers over ``cli``. README.md's Layout section says the same.
"""
import sys

from ._onednn import set_onednn_isa

set_onednn_isa()  # must run before mindspore is imported below

from .models import (create_model, get_pretrained_cfg, get_pretrained_cfg_value, is_exportable,  # noqa: E402
                     is_model, is_model_in_modules, is_model_pretrained, is_no_jit, is_scriptable, list_models,
                     list_modules, list_pretrained, model_entrypoint, register_model, set_exportable,
                     set_layer_config, set_no_jit, set_scriptable)
from .mindcv_plugin import register_with_mindcv  # noqa: E402

__version__ = "0.1.0"
__all__ = ["create_model", "get_pretrained_cfg", "get_pretrained_cfg_value", "is_exportable", "is_model",
           "is_model_in_modules", "is_model_pretrained", "is_no_jit", "is_scriptable", "list_models", "list_modules",
           "list_pretrained", "model_entrypoint", "register_model", "register_with_mindcv", "set_exportable",
           "set_layer_config", "set_no_jit", "set_scriptable", "__version__"]

if "mindcv.models" in sys.modules:  # mindcv is in use: our models join its factory (its names stay its own)
    register_with_mindcv()
