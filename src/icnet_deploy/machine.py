"""What machine a number was measured on: CPU model and its SIMD flags, threads, GPU, versions.

Speed and parity numbers mean little without it (an INT8 engine is fast on a CPU with VNNI or
AMX and slow without), so ``check`` and ``bench`` record ``describe_machine()`` in their reports.
"""

from __future__ import annotations

import os
import platform
import sys
from typing import Any

__all__ = ["cpu_name", "cpu_isa_flags", "describe_machine", "ISA_FLAGS"]

# the /proc/cpuinfo flags that decide how fast fp32/fp16/int8 kernels can be (x86, then Arm)
ISA_FLAGS = ("sse4_2", "avx", "avx2", "fma", "f16c", "avx_vnni", "avx512f", "avx512bw", "avx512vl", "avx512_vnni",
             "avx512_bf16", "avx512_fp16", "amx_tile", "amx_int8", "amx_bf16",
             "asimd", "asimdhp", "asimddp", "i8mm", "bf16", "sve", "sve2")


def _cpuinfo_field(*names: str) -> str | None:
    try:
        with open("/proc/cpuinfo") as handle:
            for line in handle:
                key, _, value = line.partition(":")
                if key.strip() in names:
                    return value.strip()
    except OSError:
        pass
    return None


def cpu_name() -> str:
    """The CPU's model name (``/proc/cpuinfo``; else what ``platform`` knows)."""
    return _cpuinfo_field("model name") or platform.processor() or platform.machine() or "unknown cpu"


def cpu_isa_flags() -> list[str]:
    """The CPU's SIMD/matrix extensions among ``ISA_FLAGS``, in that order (empty where unknown)."""
    flags = set((_cpuinfo_field("flags", "Features") or "").split())
    return [f for f in ISA_FLAGS if f in flags]


def describe_machine(device: str = "cpu") -> dict[str, Any]:
    """CPU model, ISA flags, logical CPUs, the threads torch uses, the GPU on ``cuda`` devices,
    OS, and the versions of the libraries that run engines (those importable here)."""
    from .manifest import library_versions

    info: dict[str, Any] = {"cpu": cpu_name(), "cpu_isa": cpu_isa_flags(), "logical_cpus": os.cpu_count(),
                            "platform": platform.platform(), "omp_num_threads": os.environ.get("OMP_NUM_THREADS"),
                            "versions": library_versions("torch", "onnxruntime", "onnxruntime-gpu", "tensorrt", "numpy")}
    torch = sys.modules.get("torch")  # only when already loaded: describing must not import a framework
    if torch is not None:
        info["torch_threads"] = torch.get_num_threads()
        if device.startswith("cuda") and torch.cuda.is_available():
            props = torch.cuda.get_device_properties(torch.device(device))
            info["gpu"] = {"name": props.name, "compute_capability": f"{props.major}.{props.minor}",
                           "memory_mib": props.total_memory // 2**20, "cuda": torch.version.cuda}
    return info
