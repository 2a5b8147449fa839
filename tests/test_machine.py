"""The CPU identity an INT8 engine records, and the warning when it runs on another kind of CPU."""

from __future__ import annotations

import warnings

import pytest

from icnet_deploy.machine import cpu_identity as identity, int8_kernel_class, int8_mismatch
from icnet_deploy.quantization import reduce_range_for


@pytest.mark.parametrize("flags, arch, want", [
    ({"avx2", "avx512bw", "avx512_vnni", "amx_int8"}, "x86_64", "amx"),
    ({"avx2", "avx512bw", "avx512_vnni"}, "x86_64", "avx512_vnni"),
    ({"avx2", "avx_vnni"}, "x86_64", "avx_vnni"),
    ({"avx2", "avx512bw"}, "x86_64", "avx512"),
    ({"avx2", "fma"}, "x86_64", "avx2"),
    ({"sse4_1"}, "x86_64", "baseline"),
    ({"asimd", "asimddp"}, "aarch64", "neon_dot"),
    ({"asimd"}, "aarch64", "neon"),
])
def test_int8_kernel_class(flags, arch, want):
    assert int8_kernel_class(flags, arch) == want


def test_identity_of_this_machine():
    ident = identity()
    assert set(ident) >= {"model", "arch", "isa", "int8_kernel", "cores"}
    assert ident["int8_kernel"] == int8_kernel_class(set(ident["isa"]), ident["arch"])


def test_mismatch_warns_only_across_kernel_classes():
    vnni = {"model": "A", "arch": "x86_64", "int8_kernel": "avx512_vnni"}
    avx2 = {"model": "B", "arch": "x86_64", "int8_kernel": "avx2"}
    assert int8_mismatch(vnni, dict(vnni, model="other model, same kernels")) is None
    message = int8_mismatch(vnni, avx2)
    assert "avx512_vnni" in message and "avx2" in message and "rebuild" in message
    assert int8_mismatch(None, avx2) is None  # engines built before the CPU was recorded: nothing to compare


def test_reduce_range_is_chosen_by_the_int8_kernel():
    assert reduce_range_for("cpu", "avx2")[0] and reduce_range_for("cpu", "avx512")[0]
    assert not reduce_range_for("cpu", "avx512_vnni")[0] and not reduce_range_for("cpu", "amx")[0]
    assert not reduce_range_for("tensorrt", "avx2")[0]  # TensorRT's kernels do not pair products
    assert "32767" in reduce_range_for("cpu", "avx2")[1]


def test_loading_an_int8_engine_built_on_another_cpu_warns(int8_engine_small, tmp_path):
    """The manifest's build CPU against this one: a different INT8 kernel class is one warning line."""
    import onnx

    from icnet_deploy.backends import load
    from icnet_deploy.manifest import embed_manifest, read_manifest, write_manifest

    engine = tmp_path / "other_cpu.onnx"
    manifest = read_manifest(int8_engine_small)
    here = identity()["int8_kernel"]
    manifest.details = dict(manifest.details, cpu={"model": "elsewhere", "arch": identity()["arch"],
                                                   "int8_kernel": "avx2" if here != "avx2" else "amx"})
    proto = onnx.load(str(int8_engine_small))
    embed_manifest(proto, manifest)  # sealed as build-engine writes it (a sidecar edited alone is refused)
    onnx.save(proto, str(engine))
    write_manifest(engine, manifest)
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        load(engine)
    assert any("was built and measured on a CPU with int8 kernel" in str(w.message) for w in caught)
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        load(int8_engine_small)  # built here: silent
    assert not any("int8 kernel" in str(w.message) for w in caught)
