"""Folder inference: read → preprocess → run → postprocess → write, with the engine never starved.

``infer_images(runner, "photos/", "out/")`` writes, for each input ``a/b.jpg`` (the input tree
mirrored under ``out/``):

* ``out/a/b_labelTrainIds.png`` — uint8 train ids (0..18), exactly the input's height × width
* ``out/a/b_labelIds.png`` — the same as Cityscapes label ids (what the official scripts read)
* ``out/a/b_color.png`` — the Cityscapes palette
* ``out/a/b_overlay.jpg`` — the palette blended over the photograph (``overlay=False``: not written,
  and an older ``b_overlay.jpg`` there is removed, so every file beside the new labels is from this run)

Names never collide (``output_paths``): two inputs that would share one (``b.jpg`` and ``b.png``;
``a.png`` and ``a.PNG``, compared case-insensitively) get their suffix in the stem (``b_jpg_…``,
``b_png_…``), and a name still taken gets ``_2``, ``_3``, … An output that would replace an input,
or an output folder that cannot be written, is refused before any image is read. Images whose
header declares more than ``max_pixels`` pixels are skipped without being decoded.

Sizes. An engine with a static input gets every image resized (bilinear) to that size; a
dynamic engine (eager, dynamic ONNX) runs at the image's own size (raised to the size rule's
minimum / multiple when needed). The result is mapped back to the input size by one of:

* ``none`` — the engine ran at the image's size;
* ``logits-bilinear`` — logits engines: the labels of the logits resized bilinearly (as the model's
  own upsampling does), computed without building the resized logits (the UpsampleArgmax op,
  ``plugins.upsample_argmax``);
* ``labels-nearest`` — labels engines: the label map is resized with nearest neighbour (ids are
  never blended).

Logits engines skip their own final upsample here (``Runner.infer_for_labels``): the 1/4-resolution
logits go to the writer threads, which turn them into the same labels the full output would give
(one CPU thread each: the pool already works on several images at once). Runners that make labels
on the GPU (``Runner.labels_on_device``: CUDA runners with the Triton kernel) return them straight
from the engine call, at the image's size, when a batch's images share one size. For an image that the engine ran at another size, those logits are upsampled straight to the
image's size: one bilinear step, where the full output would have been resized a second time.

The report counts which method each image got.

Pipeline. A reader pool decodes (``read_rgb``: EXIF orientation, grayscale, RGBA, 16-bit) and
preprocesses ahead of the engine, into a bounded window of pending results, so at most
``2·batch + readers`` decoded images wait in memory; the calling thread only batches and runs
the engine; a writer pool postprocesses and encodes. A file that cannot be decoded is recorded
(path and reason) and skipped — nothing is written for it — and the rest go on; the caller
decides what a non-empty ``report.failures`` means (the CLI exits 2). Each image's files are
written to temporary names and renamed together, so an error leaves no partial output.
"""

from __future__ import annotations

import collections
import os
import threading
import time
from concurrent.futures import Future, ThreadPoolExecutor
from pathlib import Path

import numpy as np

from .backends.base import Runner
from .data.transforms import resize_method, to_labels
from .data.outputs import (SUFFIXES, InferReport, Progress, collect_inputs, failure_message, output_paths, plan_outputs,
                           renamed_inputs, write_outputs)
from .errors import IcnetDeployError

__all__ = [
    "infer_images",
    "InferReport",
    "collect_inputs",
    "output_paths",
    "SUFFIXES",
]


def infer_images(
    runner: Runner,
    source: str | Path,
    output: str | Path = "infer_out",
    *,
    batch: int = 1,
    overlay: bool = True,
    allow_inside: bool = False,
    max_pixels: int | None = None,
    readers: int | None = None,
    writers: int | None = None,
    progress: Progress | None = None,
) -> InferReport:
    """Segment every image named by ``source`` (file, folder — recursive — or glob) into ``output``.

    ``runner`` is activated here if it is not active yet (and deactivated again). ``batch``:
    images per engine call (an engine with a static batch uses its own; a dynamic-size engine
    batches only consecutive images of one size). ``max_pixels``: images whose header declares
    more are skipped without being decoded (default ``data.folders.DEFAULT_MAX_PIXELS``). Returns the
    report; bad input files are in ``report.failures`` (``"stage"``: read or write), not raised.
    Raises ``IcnetDeployError``, before any image is read, for a bad source, an output folder that
    cannot be written, or an output file that would overwrite an input.
    """
    if batch < 1:
        raise IcnetDeployError(f"batch must be at least 1, got {batch}")
    output = Path(output)
    files, names, max_pixels = plan_outputs(source, output, overlay=overlay, allow_inside=allow_inside,
                                            max_pixels=max_pixels)
    cpus = os.cpu_count() or 2
    readers = readers or min(4, cpus)
    writers = writers or min(4, cpus)

    owns = not runner.is_active
    if owns:
        if hasattr(runner, "spinning"):
            # ONNX Runtime's busy-waiting threads would take the cores from the decode/encode
            # threads: 20 calib/ images, fixed-rule INT8, 2 cores: 2.37–2.65 img/s spinning, 2.86–2.90 not
            runner.spinning = False
        runner.activate()
    try:
        report = _run(runner, source, output, files, names, batch, readers, writers, progress, max_pixels)
    finally:
        if owns:
            runner.deactivate()
    report.renamed = renamed_inputs(files, names)
    return report


def _run(runner: Runner, source, output: Path, files: list[Path], names: list[dict], batch: int, readers: int,
         writers: int, progress: Progress | None, max_pixels: int) -> InferReport:
    from .data.folders import read_rgb

    static_batch = runner.batch_size
    if static_batch is not None:
        batch = static_batch
    stats = {"read": 0.0, "write": 0.0}
    lock = threading.Lock()
    failures: list[dict] = []
    resize_counts: collections.Counter = collections.Counter()
    sizes_used: set = set()

    def read(i: int) -> tuple[int, np.ndarray, np.ndarray]:
        t = time.perf_counter()
        try:
            image = read_rgb(files[i], max_pixels)
            x = runner.prepare(image)
        finally:
            with lock:
                stats["read"] += time.perf_counter() - t
        return i, image, x

    def write(i: int, image: np.ndarray, out: np.ndarray, ran_at: tuple[int, int], on_device: bool) -> str:
        t = time.perf_counter()
        try:
            if on_device:  # the labels of the logits' resize to the image's size, made on the GPU
                labels, method = out, resize_method(runner.output_kind, ran_at, image.shape[:2])
            else:  # one CPU thread each: the writer pool already runs several images at once
                labels, method = to_labels(out, runner.output_kind, image.shape[:2], ran_at, threads=1)
            write_outputs(image, labels, names[i])
            return method
        finally:
            with lock:
                stats["write"] += time.perf_counter() - t

    start = time.perf_counter()
    engine_s = 0.0
    done = 0
    written = 0
    total = len(files)
    pending_writes: collections.deque[tuple[int, Future]] = collections.deque()
    max_pending_writes = 2 * writers + batch

    def note(i: int, exc: BaseException, stage: str) -> None:
        failures.append({"path": str(files[i]), "error": failure_message(exc), "stage": stage})

    def finish_write(i: int, future: Future) -> None:
        nonlocal written
        try:
            resize_counts[future.result()] += 1
            written += 1
        except (IcnetDeployError, OSError, ValueError) as exc:
            note(i, exc, "write")
        report_done(i)

    def report_done(i: int) -> None:
        nonlocal done
        done += 1
        if progress:
            elapsed = time.perf_counter() - start
            progress(done, total, {"images_per_s": written / elapsed if elapsed else 0.0, "failed": len(failures),
                                   "last": str(files[i])})

    def run_group(group: list[tuple[int, np.ndarray, np.ndarray]]) -> None:
        nonlocal engine_s
        x = np.concatenate([g[2] for g in group], axis=0)
        if static_batch is not None and len(group) < static_batch:  # pad a static-batch engine's last call
            x = np.concatenate([x, np.repeat(x[-1:], static_batch - len(group), axis=0)], axis=0)
        sizes_used.add(tuple(x.shape[2:]))
        sizes = {g[1].shape[:2] for g in group}
        on_device = runner.labels_on_device and len(sizes) == 1
        t = time.perf_counter()
        out = runner.predict_labels(x, sizes.pop()) if on_device else runner.infer_for_labels(x)
        engine_s += time.perf_counter() - t
        for k, (i, image, _) in enumerate(group):
            while len(pending_writes) >= max_pending_writes:
                finish_write(*pending_writes.popleft())
            pending_writes.append((i, write_pool.submit(write, i, image, out[k], x.shape[-2:], on_device)))

    depth = 2 * batch + readers  # decoded images allowed to wait for the engine
    with ThreadPoolExecutor(readers, thread_name_prefix="icnet-read") as read_pool, \
            ThreadPoolExecutor(writers, thread_name_prefix="icnet-write") as write_pool:
        pending_reads: collections.deque[tuple[int, Future]] = collections.deque()
        next_i = 0
        group: list[tuple[int, np.ndarray, np.ndarray]] = []
        while next_i < total or pending_reads:
            while next_i < total and len(pending_reads) < depth:
                pending_reads.append((next_i, read_pool.submit(read, next_i)))
                next_i += 1
            i, future = pending_reads.popleft()
            try:
                item = future.result()
            except Exception as exc:  # noqa: BLE001 - any decoder failure is this file's problem, reported
                note(i, exc, "read")
                report_done(i)
                continue
            if group and (group[0][2].shape != item[2].shape or len(group) >= batch):
                run_group(group)
                group = []
            group.append(item)
            if len(group) >= batch:
                run_group(group)
                group = []
        if group:
            run_group(group)
        while pending_writes:
            finish_write(*pending_writes.popleft())
    failures.sort(key=lambda f: f["path"])
    return InferReport(
        engine=runner.describe(), source=str(source), output=str(output), total=total, written=written,
        failures=failures, batch=batch, resize=dict(resize_counts), wall_s=round(time.perf_counter() - start, 4),
        engine_s=round(engine_s, 4), read_s=round(stats["read"], 4), write_s=round(stats["write"], 4),
        readers=readers, writers=writers, engine_sizes=sorted([list(s) for s in sizes_used]),
    )
