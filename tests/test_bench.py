"""`icnet-deploy bench`: the eager baseline is always there, the JSON schema, honest statistics."""

from __future__ import annotations

import json

import pytest
from typer.testing import CliRunner

from icnet_deploy.bench import bench, latency_stats, measure_memory
from icnet_deploy.cli import app
from icnet_deploy.errors import IcnetDeployError

cli = CliRunner()
STAT_KEYS = {"p50_ms", "p90_ms", "p99_ms", "mean_ms", "std_ms", "min_ms", "max_ms", "cv", "images_per_s", "samples", "noisy"}


def test_latency_stats():
    s = latency_stats([10.0, 12.0, 11.0, 30.0], batch=2)
    assert set(s) == STAT_KEYS
    assert s["min_ms"] == 10.0 and s["max_ms"] == 30.0 and s["p50_ms"] == 11.5
    assert s["min_ms"] <= s["p50_ms"] <= s["p90_ms"] <= s["p99_ms"] <= s["max_ms"]
    assert s["images_per_s"] == pytest.approx(2 * 1000 / 15.75)
    assert s["noisy"] and s["samples"] == 4
    assert not latency_stats([10.0, 10.1, 9.9])["noisy"]
    with pytest.raises(IcnetDeployError):
        latency_stats([])


def test_cli_json_schema_with_eager_baseline_and_memory(small_onnx):
    result = cli.invoke(app, ["bench", "--engine", str(small_onnx), "--iters", "3", "--warmup", "1", "--threads", "1", "--json"])
    assert result.exit_code == 0, result.output
    data = json.loads(result.stdout[result.stdout.index("{"):])
    assert {"engines", "size", "batch", "iters", "warmup", "device", "environment", "method"} <= set(data)
    assert data["size"] == [128, 256]  # the static engine's input size
    eager, onnx_engine = data["engines"]
    assert eager["spec"] == "eager" and onnx_engine["spec"] == str(small_onnx)
    for e in (eager, onnx_engine):
        assert {"name", "spec", "describe", "input_size", "batch", "compute", "end_to_end", "memory", "vs_eager"} <= set(e)
        assert set(e["compute"]) == STAT_KEYS | {"times_ms"} and e["compute"]["samples"] == 3
        assert set(e["end_to_end"]) == STAT_KEYS | {"times_ms"}
        assert e["input_size"] == [128, 256]
        mem = e["memory"]
        assert "error" not in mem, mem
        assert mem["peak_rss_mib"] > mem["baseline_rss_mib"] > 0 and mem["engine_rss_mib"] > 0
        # the label path is measured first, so its high-water mark can only be at or below the full output's
        assert 0 < mem["labels_engine_rss_mib"] <= mem["engine_rss_mib"]
        assert mem["labels_peak_rss_mib"] <= mem["peak_rss_mib"]
    assert eager["describe"]["backend"] == "torch" and onnx_engine["describe"]["provider"] == "CPUExecutionProvider"
    assert eager["vs_eager"]["compute_speedup"] == 1.0 and eager["vs_eager"]["rss_ratio"] == 1.0
    assert onnx_engine["vs_eager"]["compute_speedup"] > 0 and onnx_engine["vs_eager"]["rss_ratio"] > 0
    assert eager["vs_eager"]["labels_rss_ratio"] == 1.0 and onnx_engine["vs_eager"]["labels_rss_ratio"] > 0
    assert "labels +" in result.stderr  # the table shows the label path's memory too
    assert len(onnx_engine["compute"]["times_ms"]) == 3  # one time per interleaved round
    assert eager["vs_eager"]["compute_speedup_paired"] == {"median": 1.0, "p25": 1.0, "p75": 1.0}
    rounds = onnx_engine["vs_eager"]["compute_speedup_paired"]
    assert 0 < rounds["p25"] <= rounds["median"] <= rounds["p75"]
    assert "loadavg_before" in data["environment"] or "cpus" in data["environment"]
    label_path = data["environment"]["label_path"]  # which UpsampleArgmax made the end-to-end labels
    assert label_path["implementation"] in ("C kernel", "numpy reference")
    assert label_path.get("threads", 1) == 1 and "label path (logits → labels on the CPU)" in result.stderr


def test_library_without_memory_or_e2e_and_dynamic_size(small_checkpoint):
    report = bench([], size=(64, 96), iters=2, warmup=0, threads=1, checkpoint=small_checkpoint, memory=False,
                   end_to_end=False)
    (eager,) = report.engines
    assert eager["input_size"] == [64, 96] and "end_to_end" not in eager and "memory" not in eager
    assert report.engine("eager") is eager


def test_memory_probe_reports_errors_instead_of_raising(tmp_path):
    result = measure_memory(str(tmp_path / "missing.onnx"), size=(64, 64))
    assert "error" in result and "missing.onnx" in result["error"]


def test_bad_arguments(small_onnx):
    with pytest.raises(IcnetDeployError):
        bench([small_onnx], iters=0)


def test_paired_speedup_cancels_load_that_moves_between_rounds():
    from icnet_deploy.bench import paired_speedup

    # the machine gets 3× slower in round 2: both engines slow down alike, the ratio stays 2
    base, engine = [100.0, 300.0, 100.0], [50.0, 150.0, 50.0]
    assert paired_speedup(base, engine) == {"median": 2.0, "p25": 2.0, "p75": 2.0}
    assert paired_speedup([], []) is None


def test_baseline_engine_ratios_come_from_the_same_rounds(small_onnx, tmp_path):
    """`--baseline`: every engine against one of the engines benched (ONNX Runtime fp32 vs INT8 is
    the question the INT8 goal asks), computed from the same interleaved rounds as vs eager."""
    result = cli.invoke(app, ["bench", "-e", str(small_onnx), "--baseline", str(small_onnx), "--iters", "3", "--warmup", "0",
                              "--threads", "1", "--no-memory", "--json"])
    assert result.exit_code == 0, result.output
    data = json.loads(result.stdout[result.stdout.index("{"):])
    eager, onnx_engine = data["engines"]
    assert data["baseline"] == onnx_engine["name"]
    assert onnx_engine["vs_baseline"]["compute_speedup"] == 1.0
    assert onnx_engine["vs_baseline"]["compute_speedup_paired"] == {"median": 1.0, "p25": 1.0, "p75": 1.0}
    # eager against the engine is the reciprocal of the engine against eager, round by round too
    assert eager["vs_baseline"]["compute_speedup"] * onnx_engine["vs_eager"]["compute_speedup"] == pytest.approx(1.0)
    assert eager["vs_baseline"]["end_to_end_speedup_paired"]["median"] == pytest.approx(
        1.0 / onnx_engine["vs_eager"]["end_to_end_speedup_paired"]["median"])
    assert f"vs {onnx_engine['name']}" in result.stderr  # the table has the column

    # eager as the baseline gives exactly the ratios vs eager; no baseline, no vs_baseline
    report = bench([small_onnx], iters=2, warmup=0, threads=1, memory=False, end_to_end=False, baseline="eager")
    assert report.baseline == "eager" and all(e["vs_baseline"] == e["vs_eager"] for e in report.engines)
    report = bench([small_onnx], iters=1, warmup=0, threads=1, memory=False, end_to_end=False)
    assert report.baseline is None and all("vs_baseline" not in e for e in report.engines)

    # a baseline that is not among the engines is bad usage, named, before anything is timed
    missing = tmp_path / "fp32.onnx"
    result = cli.invoke(app, ["bench", "-e", str(small_onnx), "--baseline", str(missing), "--iters", "1", "--no-memory"])
    assert result.exit_code == 2
    assert "fp32.onnx" in result.output and "not one of the engines benched" in result.output
    assert "bench ·" not in result.output  # no table: nothing ran
