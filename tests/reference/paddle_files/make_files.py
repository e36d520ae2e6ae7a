"""Write the real ``paddle.save`` files of this folder and ``expected.json``, what ``paddle.load`` reads from them.

Run with PaddlePaddle installed (not a dependency of this project), from this folder:

    python3 -m venv /tmp/venv-paddle && /tmp/venv-paddle/bin/pip install paddlepaddle
    /tmp/venv-paddle/bin/python make_files.py
"""
import json

import numpy as np
import paddle

VALUES = [0.006, -0.007, 1.5, -2.0]
DTYPES = ["float16", "bfloat16", "float32", "float64", "int8", "int16", "int32", "int64", "uint8", "bool",
          "float8_e4m3fn"]


def main() -> None:
    expected = {"paddle": paddle.__version__, "values": VALUES, "dtypes": {}}
    base = paddle.to_tensor(np.array(VALUES, np.float32))
    tensors = {name: base.astype(name) for name in DTYPES}
    paddle.save(tensors, "dtypes.pdparams")  # a state dict: top-level tensors, stored as numpy arrays
    loaded = paddle.load("dtypes.pdparams")
    for name in DTYPES:
        back = paddle.to_tensor(loaded[name]) if isinstance(loaded[name], np.ndarray) else loaded[name]
        expected["dtypes"][name] = {"paddle_load_dtype": str(back.dtype).replace("paddle.", ""),
                                    "as_float32": back.astype("float32").numpy().tolist()}
    paddle.save({"w": base.astype("bfloat16")}, "bfloat16.pdparams")
    paddle.save({"w": base.astype("complex64")}, "complex64.pdparams")

    paddle.seed(0)
    layer = paddle.nn.Linear(3, 2)  # weight (in, out) = (3, 2)
    paddle.save({"model": layer.state_dict(), "epoch": 3}, "nested.pdparams")  # tensors as tuple((name, array))
    expected["nested"] = {k: v.numpy().tolist() for k, v in layer.state_dict().items()}
    with open("expected.json", "w") as f:
        json.dump(expected, f, indent=1)
        f.write("\n")


if __name__ == "__main__":
    main()
