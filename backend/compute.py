"""How the learned networks run on a device: memory format and precision, decided here for training and serving.

Convolutions are what these networks spend their time on. cuDNN (tensor cores) runs them fastest on
channels-last tensors, and so does oneDNN on a CPU with native bfloat16 (AVX512-BF16 or AMX), which runs
bf16 channels-last convolutions several times faster than fp32. A CPU without it (AVX2 only) emulates bf16, tens of times slower than fp32, so
bf16 is the CPU default only where the hardware has it.
"""
from __future__ import annotations

import contextlib
import platform
from pathlib import Path
from typing import Any

import torch

CPU_BF16_CHOICES = ("auto", "on", "off")
_serving_cpu_bf16 = "auto"  # `serve --cpu-bf16`


def cpu_name() -> str:
    """The CPU's model name where the OS tells it (Linux), else the architecture: for cards and benchmark tables."""
    try:
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            if line.startswith("model name"):
                return line.partition(":")[2].strip()
    except OSError:
        pass
    return platform.processor() or platform.machine()


def native_cpu_bf16() -> bool:
    """Whether this CPU computes bfloat16 natively (AVX512-BF16 or AMX tiles), as oneDNN would use it."""
    checks = ("_is_avx512_bf16_supported", "_is_amx_tile_supported")
    return any(bool(getattr(torch.cpu, name, lambda: False)()) for name in checks)


def cpu_bf16_wanted(setting: Any) -> bool:
    """A run's or the server's `cpu_bf16` setting: true/"on", false/"off", or "auto"/None (native hardware only)."""
    if setting is None or setting == "auto":
        return native_cpu_bf16()
    if isinstance(setting, str):
        if setting not in CPU_BF16_CHOICES:
            raise ValueError(f"cpu_bf16 must be auto, on or off (or true/false); got {setting!r}")
        return setting == "on"
    return bool(setting)


def set_serving_cpu_bf16(setting: str) -> None:
    """The server's choice for learned engines on a CPU (the `serve --cpu-bf16` flag)."""
    global _serving_cpu_bf16
    cpu_bf16_wanted(setting)  # refuse a typo at start-up, not at the first fill
    _serving_cpu_bf16 = setting


def serving_precision(device: torch.device) -> str:
    """The precision learned engines serve in: bf16 on a CPU that has it natively (unless switched off), else fp32.

    GPUs serve in fp32: a fill is one forward pass, and fp32 keeps the served fill equal to the validated one."""
    return "bf16" if device.type == "cpu" and cpu_bf16_wanted(_serving_cpu_bf16) else "fp32"


def channels_last(device: torch.device, setting: Any = "auto") -> bool:
    """Channels-last by default on CUDA and on CPUs with native bf16, where the fast kernels want it.

    On an AVX2-only CPU fp32 channels-last trained ISNet short and CISI-net small 15-20 % slower than NCHW
    (benchmarks/train_speed.py), and MPS kernels are tuned for NCHW: those stay NCHW."""
    if setting is None or setting == "auto":
        return device.type == "cuda" or device.type == "cpu" and native_cpu_bf16()
    return bool(setting)


def memory_format(device: torch.device, setting: Any = "auto") -> torch.memory_format:
    return torch.channels_last if channels_last(device, setting) else torch.contiguous_format


def place_network(net: torch.nn.Module, device: torch.device, setting: Any = "auto") -> torch.nn.Module:
    """A network on its device, its 4-D weights in the device's memory format (others are unaffected)."""
    return net.to(device=device, memory_format=memory_format(device, setting))


def place_batch(x: torch.Tensor, device: torch.device, setting: Any = "auto") -> torch.Tensor:
    """A batch on its device, 4-D images in the device's memory format."""
    x = x.to(device, non_blocking=True)
    return x.contiguous(memory_format=memory_format(device, setting)) if x.dim() == 4 else x


def autocast(device: torch.device, precision: str):
    """Mixed precision for `precision` ("bf16", "fp16"); fp32 runs as it is.

    Autocast keeps reductions, norms and losses in fp32 on its own; bf16 shares fp32's exponent range, so the
    gradients that overflowed in fp16 (e.g. a 1x1 innermost block) stay finite without loss scaling."""
    if precision == "fp32":
        return contextlib.nullcontext()
    dtype = torch.bfloat16 if precision == "bf16" else torch.float16
    return torch.autocast(device.type, dtype=dtype)
