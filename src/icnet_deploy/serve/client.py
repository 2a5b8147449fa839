"""Talk to a served engine with Triton's official client (``tritonclient``, HTTP or gRPC).

``request_labels(url, images)`` sends one request and returns the label maps;
``bench_server(url, images, concurrency=[1, 4])`` measures a running server the way a fleet sees
it: each of ``concurrency`` client threads sends requests back to back for ``requests`` requests
in all; throughput is images answered per second of wall time, latency is per request.
"""

from __future__ import annotations

import threading
import time
from collections.abc import Sequence
from typing import Any

import numpy as np

from ..errors import IcnetDeployError
from .triton import INPUT, LABELS

__all__ = ["connect", "request_labels", "wait_until_ready", "bench_server"]


def _module(protocol: str):
    from ..optional import require

    if protocol not in ("http", "grpc"):
        raise IcnetDeployError(f"protocol must be http or grpc, got {protocol!r}")
    return require(f"tritonclient.{protocol}", f"a Triton {protocol} client")


def connect(url: str, protocol: str = "http"):
    """A ``tritonclient`` client for ``host:port``."""
    return _module(protocol).InferenceServerClient(url)


def request_labels(client, images: np.ndarray, *, model: str = "icnet", protocol: str = "http",
                   outputs: Sequence[str] = (LABELS,)) -> dict[str, np.ndarray]:
    """One request: uint8 N×H×W×3 (or one H×W×3) images → {output name: array} (labels: N×H×W)."""
    mod = _module(protocol)
    batch = images[None] if images.ndim == 3 else images
    tensor = mod.InferInput(INPUT, list(batch.shape), "UINT8")
    tensor.set_data_from_numpy(np.ascontiguousarray(batch))
    requested = [mod.InferRequestedOutput(name) for name in outputs]
    result = client.infer(model, [tensor], outputs=requested)
    return {name: result.as_numpy(name) for name in outputs}


def wait_until_ready(url: str, *, model: str = "icnet", protocol: str = "http", timeout_s: float = 60.0,
                     process=None) -> None:
    """Block until the server says ``model`` is ready (or raise after ``timeout_s``, or when ``process`` exits)."""
    deadline = time.monotonic() + timeout_s
    client = connect(url, protocol)
    while time.monotonic() < deadline:
        if process is not None and process.poll() is not None:
            raise IcnetDeployError(f"the server exited with code {process.returncode} before it was ready")
        try:
            if client.is_server_ready() and client.is_model_ready(model):
                return
        except Exception:  # noqa: BLE001 - not listening yet: connection refused, reset, ...
            pass
        time.sleep(0.2)
    raise IcnetDeployError(f"{url}: model {model} not ready after {timeout_s:.0f} s")


def bench_server(url: str, images: Sequence[np.ndarray], *, concurrency: Sequence[int] = (1, 4), requests: int = 20,
                 warmup: int = 2, protocol: str = "http", model: str = "icnet", batch: int = 1) -> list[dict[str, Any]]:
    """Per concurrency level: requests, images, wall s, images/s, latency p50/p90/p99/mean (ms) and errors.

    ``images`` (uint8 H×W×3, one size) are sent in turn, ``batch`` per request; every client first
    sends ``warmup`` untimed requests. The levels run one after the other against the same server.
    """
    if requests < 1 or batch < 1 or any(c < 1 for c in concurrency) or not images:
        raise IcnetDeployError("need images, requests ≥ 1, batch ≥ 1 and concurrency levels ≥ 1")
    if len({im.shape for im in images}) != 1:
        raise IcnetDeployError("bench images must share one size (a request carries one tensor)")
    batches = [np.stack([images[(k * batch + j) % len(images)] for j in range(batch)]) for k in range(len(images))]
    results = []
    for level in concurrency:
        latencies: list[float] = []
        errors: list[str] = []
        lock = threading.Lock()
        counter = iter(range(requests))

        def client_thread(offset: int) -> None:
            try:
                client = connect(url, protocol)
                for k in range(warmup):
                    request_labels(client, batches[(offset + k) % len(batches)], model=model, protocol=protocol)
            except Exception as exc:  # noqa: BLE001 - reported; the barrier must still be reached
                with lock:
                    errors.append(f"warm-up: {str(exc).splitlines()[0][:200]}")
                barrier.wait()
                return
            barrier.wait()
            while True:
                with lock:
                    k = next(counter, None)
                if k is None:
                    return
                t = time.perf_counter()
                try:
                    request_labels(client, batches[k % len(batches)], model=model, protocol=protocol)
                except Exception as exc:  # noqa: BLE001 - counted and reported, the run goes on
                    with lock:
                        errors.append(str(exc).splitlines()[0][:200])
                    continue
                ms = (time.perf_counter() - t) * 1e3
                with lock:
                    latencies.append(ms)

        barrier = threading.Barrier(level + 1)
        threads = [threading.Thread(target=client_thread, args=(i,), daemon=True) for i in range(level)]
        for t in threads:
            t.start()
        barrier.wait()
        start = time.perf_counter()
        for t in threads:
            t.join()
        wall = time.perf_counter() - start
        a = np.asarray(latencies or [float("nan")])
        results.append({
            "concurrency": level, "requests": len(latencies), "batch": batch, "images": len(latencies) * batch,
            "wall_s": round(wall, 3), "images_per_s": len(latencies) * batch / wall if wall > 0 else 0.0,
            "p50_ms": float(np.percentile(a, 50)), "p90_ms": float(np.percentile(a, 90)),
            "p99_ms": float(np.percentile(a, 99)), "mean_ms": float(a.mean()), "errors": errors,
        })
    return results
