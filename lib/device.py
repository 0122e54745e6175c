"""Compute device choice (CUDA > Apple MPS > CPU, chosen automatically and overridable) and the CPU thread budget.

The thread budget splits the cores this process may use between training and the pages, so that a training job
and the app never ask for more threads than there are cores: OpenMP threads that share a core with another busy
thread wait for each other at every parallel region. On an otherwise idle 2-core server, one other busy process
cut 2-thread training to 10-30% of its speed (979 to 103-129 samples/s with noise and reverb), while 1-thread
training kept 635-1,639 samples/s (the performance issue's figures); ``bench/contention.py`` measures it
(docs/benchmarks.md, "Training beside other work").
"""

from __future__ import annotations

import ctypes
import os

import torch

from lib.settings import positive_int

__all__ = ["DEVICE_CHOICES", "TRAIN_THREADS_ENV", "resolve_device", "describe_device", "available_devices",
           "usable_cores", "train_threads", "page_threads", "keep_freed_memory"]

DEVICE_CHOICES = ("auto", "cpu", "cuda", "mps")
TRAIN_THREADS_ENV = "AUDIOWB_TRAIN_THREADS"
HEAP_BLOCK_BYTES = 32 << 20      # blocks up to this size come from the heap (glibc's M_MMAP_THRESHOLD)
HEAP_KEPT_BYTES = 64 << 20       # free memory the heap keeps at its top (glibc's M_TRIM_THRESHOLD)


def usable_cores() -> int:
    """The cores this process may run on (its CPU affinity, which containers and ``taskset`` narrow), at least 1."""
    if hasattr(os, "sched_getaffinity"):
        return max(1, len(os.sched_getaffinity(0)))
    return max(1, os.cpu_count() or 1)


def _kept_for_pages(cores: int) -> int:
    """Cores left to the pages while a job trains: one per four cores, at least one."""
    return max(1, cores // 4)


def train_threads() -> int:
    """Intra-op threads of a training job: ``AUDIOWB_TRAIN_THREADS`` when set, else the usable cores minus those
    kept for the pages (one per four cores, at least one), at least 1. On 2 cores: 1; on 16: 12.

    Raises:
        ValueError: ``AUDIOWB_TRAIN_THREADS`` is not a whole number of at least 1.
    """
    threads = positive_int(os.environ, TRAIN_THREADS_ENV)
    if threads:
        return threads
    cores = usable_cores()
    return max(1, cores - _kept_for_pages(cores))


def page_threads() -> int:
    """Intra-op threads of the app's own work (inference, features, maps): the usable cores a training job leaves,
    at least 1. On 2 cores: 1; on 16: 4."""
    return max(1, usable_cores() - train_threads())


def _mps_available() -> bool:
    return bool(getattr(torch.backends, "mps", None) and torch.backends.mps.is_available())


def available_devices() -> list[str]:
    """Devices this machine can train on, best first: e.g. ``["cuda", "cpu"]``."""
    return (["cuda"] if torch.cuda.is_available() else []) + (["mps"] if _mps_available() else []) + ["cpu"]


def resolve_device(name: str = "auto") -> torch.device:
    """``"auto"`` picks the best available device; ``"cpu"``, ``"cuda"``, ``"cuda:1"`` or ``"mps"`` ask for one.

    Raises:
        ValueError: the device is unknown or not available here (the message lists what is).
    """
    name = (name or "auto").strip().lower()
    if name == "auto":
        return torch.device(available_devices()[0])
    kind = name.split(":")[0]
    if kind not in DEVICE_CHOICES:
        raise ValueError(f"unknown device {name!r}: choose one of {', '.join(DEVICE_CHOICES)}")
    if kind not in available_devices():
        raise ValueError(f"device {name!r} is not available on this machine; available: "
                         f"{', '.join(available_devices())}")
    return torch.device(name)


def describe_device(device: torch.device | str) -> str:
    """A human line for the sidebar: ``"CUDA GPU: NVIDIA H100 80GB HBM3"``, ``"Apple MPS"`` or ``"CPU (2 threads)"``."""
    device = torch.device(device)
    if device.type == "cuda":
        return f"CUDA GPU: {torch.cuda.get_device_name(device)}"
    if device.type == "mps":
        return "Apple MPS"
    threads = torch.get_num_threads()
    return f"CPU ({threads} thread{'s' if threads != 1 else ''})"


def keep_freed_memory() -> bool:
    """Let this process reuse the memory it frees instead of handing it back to the system after every step.

    A training step allocates and frees the same tens of MiB of activations and gradients every time. glibc's
    malloc gives each block over a moving threshold fresh pages of its own (``mmap``) and hands the top of its heap
    back once a few MiB are free there, so every step paid the page faults of fresh memory again: about 2,800 a
    ``kws_resnet`` step on one CPU thread, 9 ms of kernel time. With blocks up to :data:`HEAP_BLOCK_BYTES` taken from
    the heap and up to :data:`HEAP_KEPT_BYTES` of free heap kept, 26 and none (64 MiB kept did as well as 256 MiB,
    and a Speech Commands-sized set's peak memory fell by 0.2 GiB), and the step 8-25% faster
    (``bench/model_flops.py``, docs/benchmarks.md). For processes of their own that train (a job, the training CLI,
    a sweep worker): the app's server keeps glibc's defaults, so what it frees goes back to the machine.

    Returns:
        Whether it applied: False where the C library is not glibc (macOS, musl), which is then left as it is.
    """
    try:
        libc = ctypes.CDLL(None)
        libc.gnu_get_libc_version  # noqa: B018 - only glibc has it (and mallopt's meaning below)
    except (OSError, AttributeError, TypeError):  # TypeError: Windows has no CDLL(None)
        return False
    m_trim_threshold, m_mmap_threshold = -1, -3  # malloc.h
    return bool(libc.mallopt(m_mmap_threshold, HEAP_BLOCK_BYTES) and libc.mallopt(m_trim_threshold, HEAP_KEPT_BYTES))
