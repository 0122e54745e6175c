"""Compute device choice: CUDA > Apple MPS > CPU, chosen automatically and overridable."""

from __future__ import annotations

import torch

__all__ = ["DEVICE_CHOICES", "resolve_device", "describe_device", "available_devices"]

DEVICE_CHOICES = ("auto", "cpu", "cuda", "mps")


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
    return f"CPU ({torch.get_num_threads()} threads)"
