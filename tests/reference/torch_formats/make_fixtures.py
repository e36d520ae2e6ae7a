"""Writes the PyTorch-format fixtures of this folder. Run once in a throwaway venv with PyTorch:

    python3 -m venv /tmp/torchvenv && /tmp/torchvenv/bin/pip install torch "numpy<2"
    /tmp/torchvenv/bin/python tests/reference/torch_formats/make_fixtures.py

PyTorch is never needed by the package or its tests; the tests only read the files written here
(and the expected values saved beside them as .npz).
"""
import collections
import os

import numpy as np
import torch

HERE = os.path.dirname(os.path.abspath(__file__))


def state_dict():
    g = torch.Generator().manual_seed(0)
    base = torch.randn(6, 5, generator=g)
    sd = collections.OrderedDict()
    sd["conv.weight"] = torch.randn(4, 3, 3, 3, generator=g)
    sd["bn.running_var"] = torch.rand(4, generator=g, dtype=torch.float64)
    sd["bn.num_batches_tracked"] = torch.tensor(7, dtype=torch.int64)
    sd["half"] = torch.randn(3, 2, generator=g).half()
    sd["bf16"] = torch.randn(5, generator=g).bfloat16()
    sd["transposed"] = base.t()             # non-contiguous view (strides)
    sd["slice"] = base[2:4]                  # view with a storage offset, shares storage with 'transposed'
    sd["param"] = torch.nn.Parameter(torch.arange(6, dtype=torch.float32).reshape(2, 3))
    sd["flags"] = torch.tensor([True, False, True])
    return sd


def main():
    sd = state_dict()
    torch.save(sd, os.path.join(HERE, "small_zip.pth"))
    torch.save(sd, os.path.join(HERE, "small_legacy.pth"), _use_new_zipfile_serialization=False)
    expected = {k: (v.detach().float() if v.dtype == torch.bfloat16 else v.detach()).numpy() for k, v in sd.items()}
    np.savez(os.path.join(HERE, "small_expected.npz"), **expected)
    print("torch", torch.__version__, "wrote", sorted(os.listdir(HERE)))


if __name__ == "__main__":
    main()
