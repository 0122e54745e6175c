import pytest
import torch

from lib.device import available_devices, describe_device, resolve_device


def test_auto_picks_the_best_available():
    assert resolve_device("auto").type == available_devices()[0]
    assert available_devices()[-1] == "cpu"


def test_cpu_and_description():
    assert resolve_device("cpu") == torch.device("cpu")
    assert describe_device("cpu").startswith("CPU")


def test_unknown_or_missing_device():
    with pytest.raises(ValueError, match="unknown device"):
        resolve_device("tpu")
    if not torch.cuda.is_available():
        with pytest.raises(ValueError, match="not available"):
            resolve_device("cuda")
