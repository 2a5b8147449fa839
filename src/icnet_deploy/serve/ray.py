"""``infer_images_ray``: ``infer``'s folder inference, distributed over a Ray cluster with Ray Data.

The driver plans the run exactly as ``infer_images`` does (``infer.plan_outputs``: the same inputs,
output names and refusals before any image is read), then streams the file list through
``map_batches`` on a pool of ``LabelWorker`` actors, each holding one activated Runner. A worker
reads its images by path (``read_rgb``: the ``max_pixels`` check from the header, EXIF, 16-bit...),
labels them by ``Runner.label_images`` and encodes the four outputs (``infer.encode_outputs``); the
driver writes each image's files together (``infer.write_encoded``). So every file is byte-identical
to the single-process ``infer``'s, a file that cannot be read is named in ``failures`` while the
rest go on, and the caller (the CLI) exits 2 when there are failures.

Without ``address`` a local cluster is started (and stopped at the end) with ``num_cpus`` CPUs;
with one (``"auto"``, ``"ray://host:10001"``, ``"host:6379"``) the run joins it. Workers read the
inputs by path, so on a cluster of several machines the folder must be on storage they all see.
Each worker runs its engine on ``threads`` CPU threads (default 1) and reserves that many CPUs;
``actors`` defaults to the cluster's CPUs divided by that.
"""

from __future__ import annotations

import collections
import json
import logging
import time
from pathlib import Path

import numpy as np

from ..errors import IcnetDeployError
from ..data.outputs import SUFFIXES, InferReport, Progress

__all__ = ["infer_images_ray", "LabelWorker"]


class LabelWorker:
    """A Ray Data map worker: a batch of {"index", "path"} rows → per row its encoded outputs or its error."""

    def __init__(self, engine: str | None, device: str, provider: str | None, threads: int, overlay: bool,
                 max_pixels: int, max_batch: int) -> None:
        from ..backends.loader import load

        self.runner = load(engine, device=device, provider=provider, threads=threads)
        if hasattr(self.runner, "spinning"):  # ONNX Runtime: idle spinning would take the CPUs of the other workers
            self.runner.spinning = False
        self.runner.activate()
        self.overlay, self.max_pixels, self.max_batch = overlay, max_pixels, max_batch
        self.description = json.dumps(self.runner.describe(), default=str)

    def __call__(self, batch: dict[str, np.ndarray]) -> dict[str, list]:
        from ..data.folders import read_rgb
        from ..data.transforms import resize_method
        from ..data.outputs import encode_outputs, failure_message

        n = len(batch["index"])
        out: dict[str, list] = {"index": [int(i) for i in batch["index"]], "error": [""] * n, "stage": [""] * n,
                                "method": [""] * n, "ran_at": [""] * n, "read_s": [0.0] * n, "engine_s": [0.0] * n,
                                "encode_s": [0.0] * n, "engine": [self.description] * n,
                                **{key: [b""] * n for key in SUFFIXES}}
        images: dict[int, np.ndarray] = {}
        for k, path in enumerate(batch["path"]):
            t = time.perf_counter()
            try:
                images[k] = read_rgb(Path(str(path)), self.max_pixels)
            except Exception as exc:  # noqa: BLE001 - any decoder failure is this file's problem, reported
                out["error"][k], out["stage"][k] = failure_message(exc), "read"
            out["read_s"][k] = time.perf_counter() - t
        good = sorted(images)
        if not good:
            return out
        t = time.perf_counter()
        labels = self.runner.label_images([images[k] for k in good], max_batch=self.max_batch)
        engine_share = (time.perf_counter() - t) / len(good)
        for k, label_map in zip(good, labels):
            t = time.perf_counter()
            size = images[k].shape[:2]
            ran_at = self.runner.input_size_for(*size)
            out["method"][k] = resize_method(self.runner.output_kind, ran_at, size)
            out["ran_at"][k] = f"{ran_at[0]}x{ran_at[1]}"
            try:
                encoded = encode_outputs(images[k], label_map, self.overlay)
            except (IcnetDeployError, OSError, ValueError) as exc:
                out["error"][k], out["stage"][k] = failure_message(exc), "write"
            else:
                for key, data in encoded.items():
                    out[key][k] = data
            out["engine_s"][k], out["encode_s"][k] = engine_share, time.perf_counter() - t
        return out


def infer_images_ray(
    engine: str | Path | None,
    source: str | Path,
    output: str | Path = "infer_out",
    *,
    address: str | None = None,
    actors: int | None = None,
    threads: int | None = None,
    num_cpus: int | None = None,
    batch: int = 1,
    overlay: bool = True,
    allow_inside: bool = False,
    max_pixels: int | None = None,
    device: str = "cpu",
    provider: str | None = None,
    progress: Progress | None = None,
) -> InferReport:
    """``infer_images`` on a Ray cluster: the same outputs, names, refusals and report.

    ``engine``: what ``icnet_deploy.load`` takes (each worker loads its own). ``address``: the
    cluster to join (None: start a local one with ``num_cpus`` CPUs, default all). ``actors``: the
    worker pool size; ``threads``: engine threads per worker (default 1). ``batch``: images per
    worker call. Raises ``BackendUnavailable`` without the ray extra, ``IcnetDeployError`` before
    any image is read for the refusals of ``infer_images``.
    """
    from ..backends.loader import load
    from ..data.outputs import failure_message, plan_outputs, renamed_inputs, write_encoded
    from ..optional import require

    if batch < 1 or (actors is not None and actors < 1) or (threads is not None and threads < 1):
        raise IcnetDeployError(f"need batch, actors and threads ≥ 1 (got {batch}, {actors}, {threads})")
    ray = require("ray", "`infer --ray`")
    require("ray.data", "`infer --ray`")
    output = Path(output)
    files, names, max_pixels = plan_outputs(source, output, overlay=overlay, allow_inside=allow_inside,
                                            max_pixels=max_pixels)
    description = load(engine, device=device, provider=provider, threads=threads).describe()  # a bad engine fails here
    per_worker = threads or 1
    started = not ray.is_initialized()
    if started:
        ray.init(address=address, num_cpus=num_cpus if address is None else None, include_dashboard=False,
                 log_to_driver=False, logging_level=logging.ERROR)
    start = time.perf_counter()
    try:
        context = ray.data.DataContext.get_current()
        context.enable_progress_bars = False
        context.print_on_execution_start = False
        logging.getLogger("ray.data").setLevel(logging.ERROR)
        cpus = int(ray.cluster_resources().get("CPU", 1))
        pool = actors or max(1, cpus // per_worker)
        rows = [{"index": i, "path": str(f)} for i, f in enumerate(files)]
        dataset = ray.data.from_items(rows, override_num_blocks=max(1, min(len(rows), 4 * pool))).map_batches(
            LabelWorker, fn_constructor_kwargs={
                "engine": None if engine is None else str(engine), "device": device, "provider": provider,
                "threads": per_worker, "overlay": overlay, "max_pixels": max_pixels, "max_batch": batch},
            compute=ray.data.ActorPoolStrategy(size=pool), num_cpus=per_worker, batch_size=batch, batch_format="numpy")
        failures: list[dict] = []
        resize_counts: collections.Counter = collections.Counter()
        sizes: set = set()
        times = {"read": 0.0, "engine": 0.0, "write": 0.0}
        written = done = 0
        for row in dataset.iter_rows():
            i = int(row["index"])
            description = json.loads(str(row["engine"]))  # as the workers' active runners describe themselves
            times["read"] += float(row["read_s"])
            times["engine"] += float(row["engine_s"])
            times["write"] += float(row["encode_s"])
            if row["error"]:
                failures.append({"path": str(files[i]), "error": str(row["error"]), "stage": str(row["stage"])})
            else:
                t = time.perf_counter()
                try:
                    write_encoded({key: bytes(row[key]) for key in names[i]}, names[i])
                except (IcnetDeployError, OSError) as exc:
                    failures.append({"path": str(files[i]), "error": failure_message(exc), "stage": "write"})
                else:
                    written += 1
                    resize_counts[str(row["method"])] += 1
                    sizes.add(tuple(int(v) for v in str(row["ran_at"]).split("x")))
                times["write"] += time.perf_counter() - t
            done += 1
            if progress:
                elapsed = time.perf_counter() - start
                progress(done, len(files), {"images_per_s": written / elapsed if elapsed else 0.0,
                                            "failed": len(failures), "last": str(files[i])})
    finally:
        if started:
            ray.shutdown()
    failures.sort(key=lambda f: f["path"])
    report = InferReport(
        engine=description | {"ray": {"address": address or "local", "workers": pool, "threads_per_worker": per_worker,
                                      "cluster_cpus": cpus}},
        source=str(source), output=str(output), total=len(files), written=written, failures=failures, batch=batch,
        resize=dict(resize_counts), wall_s=round(time.perf_counter() - start, 4), engine_s=round(times["engine"], 4),
        read_s=round(times["read"], 4), write_s=round(times["write"], 4), readers=pool, writers=pool,
        engine_sizes=sorted([list(s) for s in sizes]))
    report.renamed = renamed_inputs(files, names)
    return report
