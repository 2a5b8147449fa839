"""``serve(engine)``: an engine behind NVIDIA Triton Inference Server, through PyTriton.

PyTriton starts the real ``tritonserver`` binary it ships (HTTP, gRPC, metrics, dynamic batching,
health and readiness) and hands each batch of requests to a Python callable in this process
(``LabelModel``), through Triton's Python backend. The model, ``icnet`` by default:

* input ``image``: uint8 H×W×3 RGB, any size, batched (``[N, H, W, 3]``; a request may carry
  several images of one size, and the dynamic batcher joins requests of one size);
* output ``labels``: uint8 train ids at the input's size (``[N, H, W]``), made by ``infer``'s own
  path (``Runner.label_images``), so they are byte-identical to ``icnet-deploy infer``'s;
* output ``logits`` (``logits=True``): the engine's float32 output at the size it ran at
  (``[N, C, h, w]``), computed only for requests that ask for it.

A bad request — an image under ``min_side`` or over ``max_pixels``, or (checked by Triton itself)
another dtype, rank or channel count — gets an error and the server goes on serving. SIGTERM or
SIGINT stops it cleanly (in-flight requests get ``exit_timeout_s`` to finish).

Two facts of PyTriton 0.7 on a CPU machine, handled here: its Python-backend stub must load the
running interpreter's libpython (``LD_LIBRARY_PATH`` gets ``sysconfig``'s ``LIBDIR`` first, else
it may pick the system's and fail in ``multiprocessing``), and it needs numpy < 2 (with numpy 2
its responses come back empty, so ``serve`` refuses to start). "Failed to initialize NVML" in
Triton's log means only that there is no GPU.
"""

from __future__ import annotations

import contextlib
import logging
import os
import shutil
import signal
import sys
import sysconfig
import tempfile
from collections.abc import Callable, Iterator, Sequence
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Any

import numpy as np

from ..backends.base import Runner
from ..data.folders import DEFAULT_MAX_PIXELS
from ..errors import BackendUnavailable, DataError, IcnetDeployError

__all__ = ["ServeOptions", "LabelModel", "serve", "INPUT", "LABELS", "LOGITS", "MIN_SIDE"]

_LOG = logging.getLogger("icnet_deploy.serve")

INPUT, LABELS, LOGITS = "image", "labels", "logits"
MIN_SIDE = 16  # smaller images hold no scene to segment: a request with one is answered with an error


@dataclass
class ServeOptions:
    """How ``serve`` exposes an engine. Ports: 0 is not allowed (Triton needs them fixed up front)."""

    model_name: str = "icnet"
    address: str = "0.0.0.0"
    http_port: int = 8000
    grpc_port: int = 8001
    metrics_port: int = 8002
    max_batch: int = 8  # images per engine call, and Triton's max_batch_size
    queue_delay_us: int = 2000  # how long the dynamic batcher waits to fill a batch
    instances: int = 1  # model instances, each with its own runner (engine session)
    logits: bool = False
    max_pixels: int = DEFAULT_MAX_PIXELS
    min_side: int = MIN_SIDE
    device: str = "cpu"
    provider: str | None = None
    threads: int | None = None
    exit_timeout_s: int = 5
    log_file: str | None = None  # Triton's own log (default: a temporary file, removed at the end)
    verbose: bool = False  # Triton's verbose log, and every refused request's traceback

    def check(self) -> None:
        if self.max_batch < 1 or self.instances < 1 or self.queue_delay_us < 0 or self.min_side < 1:
            raise IcnetDeployError(f"need max_batch ≥ 1, instances ≥ 1, queue_delay_us ≥ 0, min_side ≥ 1 (got "
                                   f"{self.max_batch}, {self.instances}, {self.queue_delay_us}, {self.min_side})")
        ports = [self.http_port, self.grpc_port, self.metrics_port]
        if any(not 0 < p < 65536 for p in ports) or len(set(ports)) != 3:
            raise IcnetDeployError(f"ports must be three different numbers in 1..65535, got {ports}")


class LabelModel:
    """The inference callable Triton calls with a batch of requests: images → labels (and logits).

    Works without a server too: ``LabelModel(runner)([{"image": batch}])`` → ``[{"labels": ...}]``
    with ``runner`` active. Raises ``DataError`` for a request it must refuse (Triton answers every
    request of that call with it; the dynamic batcher only joins requests of one shape, so a bad
    size never fails a good request).
    """

    def __init__(self, runner: Runner, *, max_batch: int = 8, logits: bool = False,
                 max_pixels: int = DEFAULT_MAX_PIXELS, min_side: int = MIN_SIDE) -> None:
        if logits and runner.output_kind != "logits":
            raise IcnetDeployError(f"{runner.name}: outputs {runner.output_kind}, so it cannot serve logits")
        self.runner, self.max_batch, self.logits = runner, max_batch, logits
        self.max_pixels, self.min_side = max_pixels, min_side

    def __call__(self, requests: Sequence[Any]) -> list[dict[str, np.ndarray]]:
        try:
            batches = [self._images(k, request) for k, request in enumerate(requests)]
        except DataError as exc:
            _LOG.warning("refused: %s", exc)
            raise
        labels = self.runner.label_images([im for batch in batches for im in batch], max_batch=self.max_batch)
        responses, start = [], 0
        for request, batch in zip(requests, batches):
            response = {LABELS: np.stack(labels[start:start + len(batch)])}
            start += len(batch)
            wanted = getattr(request, "requested_output_names", None)
            if self.logits and (wanted is None or LOGITS in wanted):
                response[LOGITS] = np.stack([self.runner.infer(self.runner.prepare(im))[0] for im in batch])
            responses.append(response)
        return responses

    def _images(self, k: int, request: Any) -> list[np.ndarray]:
        """One request's images (uint8 N×H×W×3), checked: what Triton does not check itself."""
        try:
            batch = request[INPUT]
        except KeyError:
            raise DataError(f"request {k}: no input named {INPUT!r}") from None
        if not isinstance(batch, np.ndarray) or batch.dtype != np.uint8 or batch.ndim != 4 or batch.shape[-1] != 3:
            got = f"{batch.dtype} {list(batch.shape)}" if isinstance(batch, np.ndarray) else type(batch).__name__
            raise DataError(f"request {k}: {INPUT} must be uint8 [N, H, W, 3] RGB, got {got}")
        n, h, w, _ = batch.shape
        if n < 1:
            raise DataError(f"request {k}: no image in the batch")
        if h < self.min_side or w < self.min_side:
            raise DataError(f"request {k}: a {h}×{w} image is below the minimum {self.min_side}×{self.min_side}")
        if h * w > self.max_pixels:
            raise DataError(f"request {k}: a {h}×{w} image has {h * w} pixels, over the limit of {self.max_pixels}")
        return [np.ascontiguousarray(image) for image in batch]


def _require_pytriton() -> None:
    """PyTriton importable, and a numpy its stub can read (see the module docstring)."""
    from importlib import metadata

    from ..optional import require

    require("pytriton.triton", "`serve`")
    pytriton_version = metadata.version("nvidia-pytriton")
    if int(np.__version__.split(".")[0]) >= 2 and tuple(int(v) for v in pytriton_version.split(".")[:2]) <= (0, 7):
        raise BackendUnavailable(
            f"`serve` needs numpy < 2 with PyTriton {pytriton_version} (its Python-backend stub returns empty "
            f"outputs under numpy {np.__version__}): serve from an environment made by pip install "
            "'icnet-deploy[cpu,serve]', which resolves numpy < 2")


def _one_line(exc: BaseException) -> str:
    return " ".join(str(exc).split()) or type(exc).__name__


def _log_tail(log_file: str, lines: int = 3) -> str:
    """The last error lines of Triton's log, for an error message."""
    try:
        text = Path(log_file).read_text(errors="replace").splitlines()
    except OSError:
        return ""
    harmless = ("CudaDriverHelper", "NVML", "DCGM")  # no GPU here: not why it failed
    errors = [ln.strip() for ln in text if ln[:1] == "E" and not any(h in ln for h in harmless)][-lines:]
    return f" (Triton's log: {' | '.join(errors)})" if errors else ""


def _configure_logging(verbose: bool) -> None:
    """One line per refused request on stderr; PyTriton's own messages (a traceback per refused
    request among them) only when verbose."""
    if not logging.getLogger().handlers:
        logging.basicConfig(format="%(name)s: %(message)s", stream=sys.stderr)
    _LOG.setLevel(logging.INFO)
    logging.getLogger("pytriton").setLevel(logging.INFO if verbose else logging.ERROR)


@contextlib.contextmanager
def _removed(folder: str | None) -> Iterator[None]:
    try:
        yield
    finally:
        if folder:
            shutil.rmtree(folder, ignore_errors=True)


@contextlib.contextmanager
def _server_environment() -> Iterator[None]:
    """LD_LIBRARY_PATH for the server's children: this interpreter's libpython first (the stub loads it)."""
    before = os.environ.get("LD_LIBRARY_PATH")
    libdir = sysconfig.get_config_var("LIBDIR")
    if libdir:
        os.environ["LD_LIBRARY_PATH"] = libdir + (f":{before}" if before else "")
    try:
        yield
    finally:
        if before is None:
            os.environ.pop("LD_LIBRARY_PATH", None)
        else:
            os.environ["LD_LIBRARY_PATH"] = before


@contextlib.contextmanager
def _stop_on_signals() -> Iterator[None]:
    """SIGTERM (and SIGINT) raise KeyboardInterrupt in the main thread: PyTriton's serve loop stops
    the server on it."""
    def interrupt(signum, _frame):
        raise KeyboardInterrupt(signal.Signals(signum).name)

    previous = {s: signal.signal(s, interrupt) for s in (signal.SIGTERM, signal.SIGINT)}
    try:
        yield
    finally:
        for s, handler in previous.items():
            signal.signal(s, handler)


def serve(engine: str | Path | None, options: ServeOptions | None = None, *,
          on_ready: Callable[[dict[str, Any]], None] | None = None) -> None:
    """Serve ``engine`` (an engine file, a checkpoint, or None for the shipped model eager) on Triton
    until SIGTERM/SIGINT. ``on_ready`` gets {model, http, grpc, metrics, engine, ...} once the model
    answers. Raises ``BackendUnavailable`` without the serve extra, ``IcnetDeployError`` for bad options.
    """
    from ..backends.loader import load

    options = options or ServeOptions()
    options.check()
    _require_pytriton()
    from pytriton.model_config import DynamicBatcher, ModelConfig, Tensor
    from pytriton.triton import Triton, TritonConfig

    runners = [load(engine, device=options.device, provider=options.provider, threads=options.threads)
               for _ in range(options.instances)]
    models = []
    try:
        for runner in runners:
            if options.instances > 1 and hasattr(runner, "spinning"):
                runner.spinning = False  # ONNX Runtime: one instance's busy-waiting threads would starve the others
            runner.activate()
            models.append(LabelModel(runner, max_batch=options.max_batch, logits=options.logits,
                                     max_pixels=options.max_pixels, min_side=options.min_side))
        outputs = [Tensor(name=LABELS, dtype=np.uint8, shape=(-1, -1))]
        if options.logits:
            outputs.append(Tensor(name=LOGITS, dtype=np.float32, shape=(runners[0].num_classes, -1, -1)))
        log_dir = None
        if options.log_file is None:  # PyTriton copies Triton's stdout to ours: keep it off (--json owns stdout)
            log_dir = tempfile.mkdtemp(prefix="icnet-serve-")
        log_file = options.log_file or os.path.join(log_dir, "tritonserver.log")
        config = TritonConfig(http_address=options.address, http_port=options.http_port,
                              grpc_address=options.address, grpc_port=options.grpc_port,
                              metrics_port=options.metrics_port, exit_timeout_secs=options.exit_timeout_s,
                              log_verbose=1 if options.verbose else None, log_file=Path(log_file))
        _configure_logging(options.verbose)
        # what Triton prints before its log file opens ("Failed to initialize NVML" on a CPU machine) goes to
        # stderr: stdout is the caller's (``serve --json``)
        with _server_environment(), _stop_on_signals(), _removed(log_dir), contextlib.redirect_stdout(sys.stderr):
            try:
                with Triton(config=config) as triton:
                    triton.bind(model_name=options.model_name, infer_func=models,
                                inputs=[Tensor(name=INPUT, dtype=np.uint8, shape=(-1, -1, 3))], outputs=outputs,
                                config=ModelConfig(max_batch_size=options.max_batch,
                                                   batcher=DynamicBatcher(max_queue_delay_microseconds=options.queue_delay_us)),
                                strict=True)
                    if on_ready:
                        host = "localhost" if options.address in ("0.0.0.0", "::") else options.address
                        on_ready({"model": options.model_name, "http": f"{host}:{options.http_port}",
                                  "grpc": f"{host}:{options.grpc_port}", "metrics": f"{host}:{options.metrics_port}",
                                  "engine": runners[0].describe(), "options": asdict(options)})
                    triton.serve()
            except IcnetDeployError:
                raise
            except Exception as exc:  # noqa: BLE001 - PyTriton's own (a port taken, the server died): one line
                raise IcnetDeployError(f"Triton Inference Server failed: {_one_line(exc)}{_log_tail(log_file)}") from exc
    except KeyboardInterrupt:  # a signal before the serve loop took over
        pass
    finally:
        for runner in runners:
            runner.deactivate()
