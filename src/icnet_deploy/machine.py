"""What machine a number was measured on: CPU model, its SIMD flags and INT8 kernel class, threads,
GPU, versions.

Speed and parity numbers mean little without it, so ``check`` and ``bench`` record
``describe_machine()`` in their reports. And the CPU is part of an INT8 engine: ONNX Runtime runs
different kernels on different CPUs — AVX-512 VNNI or AVX-VNNI multiply u8×s8 into int32 in one
instruction; AVX2 without VNNI uses ``vpmaddubsw``, which adds pairs of u8×s8 products into int16
and can saturate; AMX runs int8 tiles; Arm uses dot-product instructions — so the same QDQ graph
is faster, and can round differently, from one machine to the next. An INT8 build records
``cpu_identity()`` in its manifest, and loading it on a CPU of another INT8 kernel class warns
(``int8_mismatch``).
"""

from __future__ import annotations

import functools
import os
import platform
import sys
from typing import Any

__all__ = ["ISA_FLAGS", "cpu_identity", "cpu_isa_flags", "cpu_name", "describe_cpu", "describe_machine",
           "int8_kernel_class", "int8_mismatch", "library_versions", "package_version"]

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
    if not flags and platform.system() == "Darwin" and platform.machine() == "arm64":
        flags = {"asimd", "asimddp"}  # every Apple silicon core has NEON with dot product
    return [f for f in ISA_FLAGS if f in flags]


def int8_kernel_class(flags: set[str] | list[str], arch: str) -> str:
    """The best INT8 dot-product path the flags allow: ``amx``, ``avx512_vnni``, ``avx_vnni``,
    ``avx512`` (no VNNI), ``avx2`` (no VNNI: u8×s8 pairs saturate in int16), ``neon_dot``, ``neon``,
    or ``baseline``."""
    f = set(flags)
    if arch.lower() in ("x86_64", "amd64", "i386", "i686"):
        for cls, need in (("amx", "amx_int8"), ("avx512_vnni", "avx512_vnni"), ("avx_vnni", "avx_vnni"),
                          ("avx512", "avx512bw"), ("avx2", "avx2")):
            if need in f:
                return cls
        return "baseline"
    if arch.lower() in ("aarch64", "arm64"):
        return "neon_dot" if "asimddp" in f else "neon"
    return "baseline"


@functools.lru_cache(maxsize=1)
def cpu_identity() -> dict[str, Any]:
    """``{"model", "arch", "isa", "int8_kernel", "cores"}`` of this machine: what an INT8 build records."""
    arch = platform.machine() or "unknown"
    isa = cpu_isa_flags()
    return {"model": cpu_name(), "arch": arch, "isa": isa, "int8_kernel": int8_kernel_class(isa, arch),
            "cores": os.cpu_count()}


def describe_cpu(ident: dict[str, Any] | None = None) -> str:
    """One line for tables: ``Intel(R) Xeon(R) … (x86_64, int8 kernel avx512_vnni)``."""
    ident = ident or cpu_identity()
    return f"{ident.get('model')} ({ident.get('arch')}, int8 kernel {ident.get('int8_kernel')})"


def int8_mismatch(built_on: dict[str, Any] | None, running: dict[str, Any] | None = None) -> str | None:
    """A warning when an INT8 engine built (and measured) on ``built_on`` runs on a CPU with another
    INT8 kernel class, else None: speed, and rounding where u8×s8 products saturate, differ."""
    if not built_on or not built_on.get("int8_kernel"):
        return None
    running = running or cpu_identity()
    if built_on["int8_kernel"] == running["int8_kernel"] and built_on.get("arch") == running.get("arch"):
        return None
    return (f"this INT8 engine was built and measured on a CPU with int8 kernel {built_on['int8_kernel']} "
            f"({built_on.get('model')}); this one has {running['int8_kernel']} ({running.get('model')}): "
            "its speed, and its rounding where u8×s8 products saturate, may differ — rebuild it here, "
            "or check it here (icnet-deploy check)")


def describe_machine(device: str = "cpu") -> dict[str, Any]:
    """CPU model, ISA flags, INT8 kernel class, logical CPUs, the threads torch uses, the GPU on
    ``cuda`` devices, OS, and the versions of the libraries that run engines (those importable here)."""
    ident = cpu_identity()
    info: dict[str, Any] = {"cpu": ident["model"], "cpu_isa": ident["isa"], "arch": ident["arch"],
                            "int8_kernel": ident["int8_kernel"], "logical_cpus": os.cpu_count(),
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


def package_version() -> str:
    """This package's version, from its installed metadata (one source: pyproject.toml)."""
    from importlib import metadata

    try:
        return metadata.version("icnet-deploy")
    except metadata.PackageNotFoundError:  # a source tree that was never installed
        return "0+unknown"


def library_versions(*names: str) -> dict[str, str]:
    """Versions of the named libraries that are importable (plus python and icnet-deploy)."""
    from importlib import metadata

    versions = {"python": platform.python_version(), "icnet_deploy": package_version()}
    for name in names:
        try:
            versions[name] = metadata.version(name)
        except metadata.PackageNotFoundError:
            continue
    return versions
