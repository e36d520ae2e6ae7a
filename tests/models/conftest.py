"""tests/models: the networks (blocks, heads, features, dilation), the registry and create_model, timm's and
mindcv's model API, and exact parity with the official networks."""
import pytest

from helpers.parity import parity_inputs as read_parity_inputs


@pytest.fixture(scope="session")
def parity_inputs():
    """{name: NCHW float32 images} of the parity data, read once."""
    return read_parity_inputs()
