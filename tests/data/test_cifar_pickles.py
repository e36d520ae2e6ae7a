"""CIFAR-10/100 in the python version (``cifar-10-batches-py/``, ``cifar-100-python/``: what torchvision
downloads), read beside the binary version: files written here as Python 2's cPickle wrote the originals, a
malicious pickle refused without running it, and any bytes as a batch file giving records or one line naming it."""
import io
import pickle
import struct

import numpy as np
import pytest
from hypothesis import HealthCheck, given, settings, strategies as st

from helpers.checkpoints import PickleExploit
from mindcv_res2net.data import DatasetError, create_source
from mindcv_res2net.data.sources import read_cifar_pickle
from mindcv_res2net.weights.torch_file import UnsafePickleError


class _Python2Pickler(pickle._Pickler):
    """Protocol 2 as Python 2 wrote it: every str and bytes a byte string (SHORT_BINSTRING / BINSTRING), so that
    Python 3 reads the dict keys and the arrays' bytes back as bytes, as from the real CIFAR files."""

    dispatch = pickle._Pickler.dispatch.copy()

    def save_string(self, obj):
        raw = obj.encode("latin1") if isinstance(obj, str) else obj
        header = pickle.SHORT_BINSTRING + bytes([len(raw)]) if len(raw) < 256 else \
            pickle.BINSTRING + struct.pack("<i", len(raw))
        self.write(header + raw)
        self.memoize(obj)

    dispatch[bytes] = save_string
    dispatch[str] = save_string


def python2_pickle(obj) -> bytes:
    buffer = io.BytesIO()
    _Python2Pickler(buffer, protocol=2).dump(obj)
    return buffer.getvalue().replace(b"cnumpy._core.multiarray\n", b"cnumpy.core.multiarray\n")  # numpy 1 names


def _records(count, classes, seed):
    rng = np.random.default_rng(seed)
    return rng.integers(0, 256, (count, 3072), dtype=np.uint8), [int(v) for v in rng.integers(0, classes, count)]


def write_cifar10_python(folder, train_records=(4, 3, 2, 1, 1), test_records=3):
    """cifar-10-batches-py/ as the archive holds it; returns {file: (data, labels)}."""
    folder.mkdir(parents=True, exist_ok=True)
    written = {}
    for i, (name, count) in enumerate(zip([f"data_batch_{i}" for i in range(1, 6)] + ["test_batch"],
                                          list(train_records) + [test_records])):
        data, labels = _records(count, 10, i)
        written[name] = (data, labels)
        (folder / name).write_bytes(python2_pickle({b"batch_label": b"training batch", b"labels": labels,
                                                    b"data": data, b"filenames": [b"x.png"] * count}))
    (folder / "batches.meta").write_bytes(python2_pickle({b"num_cases_per_batch": 10000, b"num_vis": 3072,
                                                          b"label_names": [b"airplane", b"automobile", b"bird", b"cat",
                                                                           b"deer", b"dog", b"frog", b"horse",
                                                                           b"ship", b"truck"]}))
    return written


def _binary_version(folder, written):
    """The same records as cifar-10-batches-bin/ (label byte + 3072 pixel bytes per record)."""
    folder.mkdir(parents=True)
    for name, (data, labels) in written.items():
        records = np.concatenate([np.array(labels, np.uint8)[:, None], data], axis=1)
        records.tofile(folder / f"{name}.bin")


def test_the_python_version_reads_as_the_binary_one(tmp_path):
    written = write_cifar10_python(tmp_path / "py" / "cifar-10-batches-py")
    _binary_version(tmp_path / "bin" / "cifar-10-batches-bin", written)
    for split, count in (("train", 11), ("val", 3)):
        pickled = create_source("cifar10", split, str(tmp_path / "py"))
        binary = create_source("cifar10", split, str(tmp_path / "bin"))
        assert len(pickled) == len(binary) == count
        assert np.array_equal(pickled.images, binary.images) and np.array_equal(pickled.labels, binary.labels)
    assert pickled.class_names[:2] == ["airplane", "automobile"] and len(pickled.class_names) == 10
    data, labels = written["test_batch"]
    image, label = create_source("cifar10", "val", str(tmp_path / "py" / "cifar-10-batches-py"))[2]  # the folder itself
    assert label == labels[2] and np.array_equal(image, data[2].reshape(3, 32, 32).transpose(1, 2, 0))


def test_cifar100_python_version_reads_the_fine_labels_and_names(tmp_path):
    folder = tmp_path / "cifar-100-python"
    folder.mkdir()
    for name, count in (("train", 5), ("test", 4)):
        data, fine = _records(count, 100, count)
        (folder / name).write_bytes(python2_pickle({b"data": data, b"fine_labels": fine, b"coarse_labels": [0] * count,
                                                    b"filenames": [b"a.png"] * count}))
    names = [f"class_{i}".encode() for i in range(100)]
    (folder / "meta").write_bytes(python2_pickle({b"fine_label_names": names, b"coarse_label_names": [b"c"] * 20}))
    val = create_source("cifar100", "val", str(tmp_path))
    assert len(val) == 4 and list(val.labels) == fine and val.class_names[99] == "class_99"
    assert len(create_source("cifar100", "train", str(tmp_path))) == 5


def test_a_python_3_pickle_of_the_same_dict_reads_too(tmp_path):
    """Files re-saved by Python 3 (str keys, protocols 2 to 5, numpy arrays as labels) hold the same records."""
    data, labels = _records(3, 10, 0)
    folder = tmp_path / "cifar-10-batches-py"
    write_cifar10_python(folder)
    for protocol in (2, 3, 4, 5):
        (folder / "test_batch").write_bytes(pickle.dumps({"data": data, "labels": np.array(labels)}, protocol=protocol))
        val = create_source("cifar10", "val", str(tmp_path))
        assert list(val.labels) == labels and np.array_equal(val.images[1], data[1].reshape(3, 32, 32).transpose(1, 2, 0))


def test_not_found_names_both_versions(tmp_path):
    with pytest.raises(DatasetError, match=r"^cifar10 not found: looked for the binary version .*/cifar-10-batches-bin/"
                                           r"test_batch.bin and the python version .*/cifar-10-batches-py/test_batch; "
                                           r"pass --dataset_download .*, or unpack either under --data_dir$"):
        create_source("cifar10", "val", str(tmp_path))
    with pytest.raises(DatasetError, match=r"cifar-100-binary/test.bin and the python version .*cifar-100-python/test;"):
        create_source("cifar100", "val", str(tmp_path))


def test_a_malicious_batch_file_is_refused_and_runs_nothing(tmp_path):
    folder = tmp_path / "cifar-10-batches-py"
    write_cifar10_python(folder)
    marker = tmp_path / "pwned"
    (folder / "data_batch_3").write_bytes(pickle.dumps({"data": PickleExploit(marker), "labels": [1]}, protocol=2))
    with pytest.raises(UnsafePickleError, match=r"^cifar10: .*data_batch_3: refusing to load 'posix.system'"):
        create_source("cifar10", "train", str(tmp_path))
    assert not marker.exists()


@pytest.mark.parametrize("batch, error, message", [
    ({b"data": np.zeros((2, 3072), np.float32), b"labels": [0, 1]}, DatasetError,
     r"'data' must be \(N, 3072\) uint8 images, the file holds a float32 array of shape \(2, 3072\)"),
    ({b"data": np.zeros((2, 3072), np.uint8), b"labels": [0]}, DatasetError, r"has 2 images but 1 labels"),
    ({b"data": np.zeros((1, 3072), np.uint8), b"labels": [-1]}, DatasetError, r"'labels' holds a label below 0"),
    ({b"data": np.zeros((1, 3072), np.uint8), b"labels": [b"cat"]}, DatasetError,
     r"'labels' must be a list of integer labels"),
    ({b"data": np.zeros((1, 3072), np.uint8), b"labels": [12]}, DatasetError, r"label 12 out of range \(10 classes\)"),
    ({b"data": np.zeros((0, 3072), np.uint8), b"labels": []}, DatasetError, r"holds no images"),
    ([1, 2], DatasetError, r"is not a CIFAR python-version file \(a pickled dict\): it holds a list"),
    ({b"data": np.array([b"x"], dtype=object), b"labels": [0]}, UnsafePickleError, r"refusing array dtype 'O8'"),
])
def test_a_wrong_batch_is_one_line_naming_the_file(tmp_path, batch, error, message):
    folder = tmp_path / "cifar-10-batches-py"
    write_cifar10_python(folder)
    (folder / "test_batch").write_bytes(python2_pickle(batch))
    with pytest.raises(error, match=message) as caught:
        create_source("cifar10", "val", str(tmp_path))
    assert str(folder / "test_batch") in str(caught.value) and len(str(caught.value).splitlines()) == 1


@settings(max_examples=60, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(count=st.integers(1, 5), seed=st.integers(0, 2 ** 16), python2=st.booleans())
def test_records_round_trip(tmp_path_factory, count, seed, python2):
    data, labels = _records(count, 10, seed)
    path = tmp_path_factory.mktemp("cifar") / "test_batch"
    batch = {b"data": data, b"labels": labels} if python2 else {"data": data, "labels": labels}
    path.write_bytes(python2_pickle(batch) if python2 else pickle.dumps(batch, protocol=4))
    read = read_cifar_pickle(str(path), "cifar10")
    assert read["labels"] == labels and np.array_equal(read["data"], data)


_VALID = python2_pickle({b"data": np.zeros((2, 3072), np.uint8), b"labels": [3, 4]})


@settings(max_examples=200, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(raw=st.one_of(st.binary(max_size=400),
                     st.builds(lambda cut, flips: bytes(b ^ flips.get(i, 0) for i, b in enumerate(_VALID[:cut])),
                               st.integers(0, len(_VALID)), st.dictionaries(st.integers(0, 400), st.integers(1, 255)))))
def test_any_bytes_as_a_batch_file_are_records_or_one_line_naming_it(tmp_path_factory, raw):
    folder = tmp_path_factory.mktemp("cifar") / "cifar-10-batches-py"
    write_cifar10_python(folder)
    (folder / "test_batch").write_bytes(raw)
    try:
        source = create_source("cifar10", "val", str(folder))
    except (DatasetError, UnsafePickleError) as exc:
        message = str(exc)
        assert len(message.splitlines()) == 1 and str(folder / "test_batch") in message
    else:
        assert source.images.shape[1:] == (32, 32, 3) and len(source.labels) == len(source.images)
