"""The bound on what a weight file's pickle may expand to: shared references 64 levels deep (2**64 paths to one
array), a key that would take forever to hash, in Paddle and PyTorch files alike, are refused at once; below
the bound a shared object is rebuilt once; the bound refuses exactly the objects that expand beyond it."""
import io
import pickle
import time
import zipfile

import numpy as np
import pytest
from hypothesis import given, settings, strategies as st

from helpers.programs import assert_refused_cheaply
from mindcv_res2net.weights import CheckpointError, pickle_bounds, read_checkpoint


BOMB = r"its shared references expand to more than 10000000 objects \(a pickle bomb\)$"


def _shared_64_levels():
    """A list that holds the same list twice, 64 levels deep: 2**64 paths to one float32 array."""
    value = np.ones(2, np.float32)
    for _ in range(64):
        value = [value, value]
    return value


@pytest.mark.e2e
def test_pdparams_sharing_references_64_levels_deep_is_refused_cheaply(tmp_path):
    path = tmp_path / "shared.pdparams"
    raw = pickle.dumps({"conv1._conv.weight": _shared_64_levels()}, protocol=2)
    path.write_bytes(raw.replace(b"cnumpy._core.multiarray\n", b"cnumpy.core.multiarray\n"))
    assert path.stat().st_size < 800
    assert_refused_cheaply(["tools/convert_weights.py", str(path), str(tmp_path / "out.ckpt"), "--model",
                            "paddle_res2net50_vd_26w_4s"], rf"^error: {path}: cannot read paddle checkpoint .*: {BOMB}")
    assert sorted(p.name for p in tmp_path.iterdir()) == ["shared.pdparams"]


def _tuple_key_64_levels() -> bytes:
    """A protocol-2 pickle of ``{t: 1}`` where ``t`` holds the same tuple twice, 64 levels deep: hashing the key
    (which unpickling does, in C) never ends. Written opcode by opcode: Python could not build it either."""
    raw = b"\x80\x02}K\x00\x85q\x000"  # {}, (0,) memoised as 0 and popped
    for level in range(64):  # memo[level + 1] = (memo[level], memo[level])
        raw += b"h" + bytes([level]) + b"h" + bytes([level]) + b"\x86q" + bytes([level + 1]) + b"0" * (level < 63)
    return raw + b"K\x01s."


def test_pickle_whose_key_would_hash_forever_is_refused_at_once(tmp_path):
    pdparams, legacy, archive = tmp_path / "key.pdparams", tmp_path / "key.pth", tmp_path / "key_zip.pth"
    pdparams.write_bytes(_tuple_key_64_levels())
    legacy.write_bytes(pickle.dumps(0x1950A86A20F9469CFC6C, 2) + pickle.dumps(1001, 2) + pickle.dumps({}, 2)
                       + _tuple_key_64_levels())  # torch.save's legacy stream: magic, protocol, sys info, object
    with zipfile.ZipFile(archive, "w") as zipped:
        zipped.writestr("archive/data.pkl", _tuple_key_64_levels())
    start = time.monotonic()
    for path, kind in ((pdparams, "paddle"), (legacy, "torch"), (archive, "torch")):
        with pytest.raises(CheckpointError, match=rf"^{path}: cannot read {kind} checkpoint .*: {BOMB}"):
            read_checkpoint(path)
    assert time.monotonic() - start < 5


def test_torch_file_sharing_references_64_levels_deep_is_refused_at_once(tmp_path):
    path = tmp_path / "shared.pth"
    with zipfile.ZipFile(path, "w") as archive:
        archive.writestr("archive/data.pkl", pickle.dumps({"w": _shared_64_levels()}, protocol=2))
    start = time.monotonic()
    with pytest.raises(CheckpointError, match=rf"^{path}: cannot read torch checkpoint .*: {BOMB}"):
        read_checkpoint(path)
    assert time.monotonic() - start < 5


def test_shared_references_within_the_bound_are_rebuilt_once():
    """Below the bound, a shared object is rebuilt once per object, not once per path to it (2**20 paths here)."""
    from mindcv_res2net.weights.paddle_file import _RestrictedUnpickler, paddle_arrays

    value = np.ones(2, np.float32)
    for _ in range(20):
        value = [value, value]
    raw = pickle.dumps({"w": value}, protocol=2).replace(b"cnumpy._core.multiarray\n", b"cnumpy.core.multiarray\n")
    rebuilt = paddle_arrays(_RestrictedUnpickler(io.BytesIO(raw)).load())["w"]
    for _ in range(20):
        assert rebuilt[0] is rebuilt[1]
        rebuilt = rebuilt[0]
    assert np.array_equal(rebuilt, np.ones(2, np.float32))


@settings(max_examples=60, deadline=None)
@given(plan=st.lists(st.tuples(st.sampled_from(["list", "tuple", "dict"]),
                               st.lists(st.integers(0, 1000), max_size=4)), min_size=1, max_size=12),
       protocol=st.integers(2, 5), limit=st.integers(1, 60))
def test_pickle_bound_refuses_exactly_the_objects_that_expand_beyond_it(plan, protocol, limit):
    """Random objects sharing earlier ones (a DAG): ``check_expansion`` refuses the pickle exactly when one of its
    objects, each reference counted, has more than the bound's parts (a leaf is 1, a container 1 + its parts)."""
    objects = []
    for kind, picks in plan:  # an earlier object (shared) where i % 3, else the integer i
        children = [objects[i % len(objects)] if objects and i % 3 else i for i in picks]
        objects.append({i: c for i, c in enumerate(children)} if kind == "dict" else
                       tuple(children) if kind == "tuple" else children)
    raw = pickle.dumps(objects[-1], protocol=protocol)
    original = pickle_bounds.MAX_PICKLE_OBJECTS
    pickle_bounds.MAX_PICKLE_OBJECTS = limit
    try:
        pickle_bounds.check_expansion(io.BytesIO(raw))
        refused = False
    except ValueError:
        refused = True
    finally:
        pickle_bounds.MAX_PICKLE_OBJECTS = original
    assert refused == (_expanded(objects[-1]) > limit), (_expanded(objects[-1]), limit)


def _expanded(obj) -> int:
    """Parts of ``obj`` with each reference counted (memoised by identity: linear in the distinct objects)."""
    memo = {}

    def size(value):
        if isinstance(value, (list, tuple, dict)):
            if id(value) not in memo:
                parts = list(value.values()) if isinstance(value, dict) else list(value)
                memo[id(value)] = 1 + sum(size(p) for p in parts) + (len(value) if isinstance(value, dict) else 0)
            return memo[id(value)]
        return 1

    return size(obj)
