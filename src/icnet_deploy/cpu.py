"""The CPU an engine runs on: model name and the instruction sets that decide INT8 speed and numerics.

An INT8 engine on ONNX Runtime CPU runs different kernels on different CPUs: AVX-512 VNNI or
AVX-VNNI multiply u8×s8 into int32 in one instruction; AVX2 without VNNI uses ``vpmaddubsw``,
which adds pairs of u8×s8 products into int16 and can saturate; AMX runs int8 tiles; Arm uses
dot-product instructions. So the same QDQ graph is faster, and can round differently, from one
machine to the next: the build records the CPU it was built and measured on (``identity``), and
``check``/``infer``/``bench`` say when the running CPU's INT8 kernel class differs
(``int8_mismatch``).
"""

from __future__ import annotations

import functools
import platform
from typing import Any

__all__ = ["identity", "int8_kernel_class", "int8_mismatch", "describe"]

# the flags that matter for INT8 kernels, as /proc/cpuinfo spells them
_X86_FLAGS = ("sse4_1", "avx", "avx2", "fma", "avx512f", "avx512bw", "avx512_vnni", "avx_vnni", "avx512_bf16",
              "amx_tile", "amx_int8", "amx_bf16")
_ARM_FLAGS = ("asimd", "asimddp", "i8mm", "sve", "sve2", "bf16")


def _read_cpuinfo() -> tuple[str | None, set[str]]:
    """(model name, flags) from /proc/cpuinfo (Linux); (None, empty) elsewhere."""
    name, flags = None, set()
    try:
        with open("/proc/cpuinfo") as handle:
            for line in handle:
                key, _, value = line.partition(":")
                key = key.strip().lower()
                if key == "model name" and name is None:
                    name = value.strip()
                elif key in ("flags", "features") and not flags:
                    flags = set(value.split())
    except OSError:
        pass
    return name, flags


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
def identity() -> dict[str, Any]:
    """``{"model", "arch", "isa": [flags that matter], "int8_kernel": int8_kernel_class, "cores"}``
    for this machine."""
    import os

    name, flags = _read_cpuinfo()
    arch = platform.machine() or "unknown"
    if not flags and arch.lower() == "arm64" and platform.system() == "Darwin":
        flags = {"asimd", "asimddp"}  # every Apple silicon core has NEON with dot product
    known = _ARM_FLAGS if arch.lower() in ("aarch64", "arm64") else _X86_FLAGS
    return {
        "model": name or platform.processor() or arch,
        "arch": arch,
        "isa": [f for f in known if f in flags],
        "int8_kernel": int8_kernel_class(flags, arch),
        "cores": os.cpu_count(),
    }


def describe(ident: dict[str, Any] | None = None) -> str:
    """One line for tables: ``Intel(R) Xeon(R) … (x86_64, int8 kernel avx512_vnni)``."""
    ident = ident or identity()
    return f"{ident.get('model')} ({ident.get('arch')}, int8 kernel {ident.get('int8_kernel')})"


def int8_mismatch(built_on: dict[str, Any] | None, running: dict[str, Any] | None = None) -> str | None:
    """A warning when an INT8 engine built (and measured) on ``built_on`` runs on a CPU with another
    INT8 kernel class, else None. Speed and rounding at saturation differ between kernel classes."""
    if not built_on or not built_on.get("int8_kernel"):
        return None
    running = running or identity()
    if built_on["int8_kernel"] == running["int8_kernel"] and built_on.get("arch") == running.get("arch"):
        return None
    return (f"this INT8 engine was built and measured on a CPU with int8 kernel {built_on['int8_kernel']} "
            f"({built_on.get('model')}); this one has {running['int8_kernel']} ({running.get('model')}): "
            "its speed, and its rounding where u8×s8 products saturate, may differ — rebuild it here, "
            "or check it here (icnet-deploy check)")
