import subprocess
import sys
from pathlib import Path

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


_FAULTS = """
import resource, torch
from lib.device import keep_freed_memory
applied = keep_freed_memory()
def step():  # like a training step: the same large blocks allocated, written and freed every time
    blocks = [torch.ones(n << 18) for n in (8, 8, 4, 4, 2, 1)]  # MiB
    del blocks
for _ in range(3):
    step()
before = resource.getrusage(resource.RUSAGE_SELF).ru_minflt
for _ in range(20):
    step()
print(applied, (resource.getrusage(resource.RUSAGE_SELF).ru_minflt - before) / 20)
"""


@pytest.mark.skipif(not sys.platform.startswith("linux"), reason="glibc's malloc")
def test_keep_freed_memory_reuses_what_each_step_frees():
    """Once the heap has grown to hold a step's 27 MiB, no step takes fresh pages (6,912 if all came fresh). glibc's
    own behaviour varies with the order of frees, so it is measured by the benchmark (bench/model_flops.py counts
    a kws_resnet step's page faults both ways), not here."""
    out = subprocess.run([sys.executable, "-c", _FAULTS], capture_output=True, text=True, check=True,
                         cwd=Path(__file__).resolve().parents[1]).stdout.split()
    assert out[0] == "True" and float(out[1]) < 10, out
