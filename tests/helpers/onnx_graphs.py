"""Small ONNX graphs written with ``onnx.helper`` (import this module after ``pytest.importorskip("onnx")``)."""
import numpy as np
import onnx
from onnx import TensorProto, helper, numpy_helper


def conv_pool_graph(path, classes=4, size=32, pool=True):
    """A small classifier in ONNX: 1x1 Conv to ``classes`` channels, then (``pool``) GlobalAveragePool, so its
    output is (N, K, 1, 1); without the pool it is (N, K, size, size) (``size`` None: any, named H and W).
    Returns (weight (K, 3), bias (K,))."""
    rng = np.random.default_rng(1)
    weight = rng.standard_normal((classes, 3, 1, 1)).astype(np.float32)
    bias = rng.standard_normal(classes).astype(np.float32)
    nodes = [helper.make_node("Conv", ["images", "w", "b"], ["conv" if pool else "logits"])]
    if pool:
        nodes.append(helper.make_node("GlobalAveragePool", ["conv"], ["logits"]))
    height, width = (size, size) if size else ("H", "W")
    out_shape = ["N", classes, 1, 1] if pool else ["N", classes, height, width]
    graph = helper.make_graph(
        nodes, "conv_pool", [helper.make_tensor_value_info("images", TensorProto.FLOAT, ["N", 3, height, width])],
        [helper.make_tensor_value_info("logits", TensorProto.FLOAT, out_shape)],
        initializer=[numpy_helper.from_array(weight, "w"), numpy_helper.from_array(bias, "b")])
    model = helper.make_model(graph, opset_imports=[helper.make_opsetid("", 13)])
    model.ir_version = 8
    onnx.checker.check_model(model)
    onnx.save(model, path)
    return weight[:, :, 0, 0], bias
