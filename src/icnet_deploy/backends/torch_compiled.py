"""Compiled PyTorch backend: ``torch.compile`` (Inductor; CUDA graphs with ``reduce-overhead``).

An engine of format ``torch`` is two files:

* ``icnet_compiled.torch`` — a zip archive of what the build's compile left in torch's caches:
  ``cache_artifacts.bin``, the bytes of ``torch.compiler.save_cache_artifacts()`` (Inductor
  FX-graph and AOTAutograd cache entries; on CUDA these also bundle the Triton kernels and
  autotuning results), and ``kernels/**.so``, the C++ kernels Inductor built for them (the CPU
  backend's kernels are not part of the cache artefacts, and building them is most of a CPU
  compile). ``engine.json`` inside says what the archive is.
* ``icnet_compiled.torch.json`` — the manifest: checkpoint path and sha256, precision, input
  shape, compile mode, and the torch / CUDA versions and device name it was compiled for.

There are no weights in the engine: ``CompiledTorchRunner`` loads the checkpoint the manifest
names, refuses it unless its sha256 matches, hot-loads the cache artefacts and kernels into
torch's local cache directory (``TORCHINDUCTOR_CACHE_DIR``, default ``/tmp/torchinductor_$USER``),
compiles (``fullgraph=True, dynamic=False``: one static shape, no graph breaks) and runs one
warm-up batch, so the first ``infer()`` is not the slow one. Dynamo still traces the model at
every start (seconds); everything after that comes from the cache. Inference itself is the
eager ``TorchRunner``'s (channels-last input, fp16 inside, float32 logits at the interface).

What is compiled is ``ICNet.forward_coarse``, the network up to its 1/4-resolution logits:
``infer`` adds the model's own final upsample (``upsample_logits``, eager) and
``infer_for_labels`` returns the coarse logits for the exact label path
(``upsample.bilinear_argmax``), so one compiled graph serves both without writing 19
full-resolution maps for callers that want labels.
On CPU the C++ kernels read the OpenMP thread count at run time, so one engine serves any
``threads`` without recompiling.

An engine holds native code and pickled cache entries, like any compiled engine: load only
engines you built or trust (the manifest's sha256 guards against corruption, not against a
malicious file).

A cache compiled by another torch build, for another CUDA version or another device is at best
useless, so the runner refuses such an engine with a clear message instead of silently
recompiling (and, on GPU, silently running kernels tuned for another chip).
"""

from __future__ import annotations

import json
import re
import time
import zipfile
from pathlib import Path
from typing import Any

import numpy as np

from ..errors import ArtifactError, BackendUnavailable, IcnetDeployError
from ..fileio import atomic_write_bytes
from ..machine import cpu_name
from ..manifest import Manifest, read_manifest
from .torch_eager import TorchRunner

__all__ = [
    "CompiledTorchRunner",
    "COMPILE_MODES",
    "device_identity",
    "check_compatible",
    "compile_module",
    "coarse_logits_module",
    "cache_dir",
    "load_cache_artifacts",
    "loaded_kernel_binaries",
    "read_engine_file",
    "write_engine_file",
]

COMPILE_MODES = ("default", "reduce-overhead", "max-autotune")
REBUILD_HINT = "rebuild it here with `icnet-deploy build-engine --backend torch`"


def _cpu_isa() -> str | None:
    """The SIMD level Inductor's C++ backend targets here (avx512, avx2, neon, …)."""
    try:
        from torch._inductor.cpu_vec_isa import pick_vec_isa  # private, informational only

        return str(pick_vec_isa()) or None
    except Exception:
        return None


def device_identity(device: str) -> dict[str, Any]:
    """What a compiled engine is tied to: device kind and name, torch and CUDA versions.

    ``{"device": "cuda"|"cpu", "device_name", "torch", "cuda", "compute_capability"|"cpu_isa"}``.
    """
    import torch

    ident: dict[str, Any] = {"torch": torch.__version__, "cuda": torch.version.cuda}
    if device.startswith("cuda"):
        if not torch.cuda.is_available():
            raise BackendUnavailable("torch backend: CUDA was requested but torch sees no GPU")
        props = torch.cuda.get_device_properties(torch.device(device))
        ident |= {"device": "cuda", "device_name": props.name, "compute_capability": f"{props.major}.{props.minor}"}
    else:
        isa = _cpu_isa()  # part of the name: virtual CPUs often share one vague model name
        ident |= {"device": "cpu", "device_name": f"{cpu_name()} [{isa}]" if isa else cpu_name(), "cpu_isa": isa}
    return ident


def check_compatible(artifact: str | Path, manifest: Manifest) -> None:
    """Refuse an engine compiled for another device, torch build or CUDA version.

    Raises ``BackendUnavailable`` when its device is missing here, ``ArtifactError`` otherwise.
    """
    import torch

    if manifest.format != "torch":
        raise ArtifactError(f"{artifact}: is a {manifest.format} artifact, not a compiled torch engine")
    built = manifest.details
    missing = [k for k in ("device", "device_name", "torch", "compile_mode") if not built.get(k)]
    if missing:
        raise ArtifactError(f"{artifact}: manifest details lack {missing}: not a complete compiled torch engine")
    if built["compile_mode"] not in COMPILE_MODES:
        raise ArtifactError(f"{artifact}: unknown compile mode {built['compile_mode']!r} in its manifest")
    if built["device"] == "cuda" and not torch.cuda.is_available():
        raise BackendUnavailable(f"{artifact}: compiled for CUDA ({built['device_name']}) but torch sees no GPU here")
    here = device_identity(built["device"])
    if built["torch"] != here["torch"]:
        raise ArtifactError(
            f"{artifact}: compiled with torch {built['torch']} but this is torch {here['torch']}; {REBUILD_HINT}"
        )
    if built["device"] == "cuda" and built.get("cuda") != here["cuda"]:
        raise ArtifactError(
            f"{artifact}: compiled for CUDA {built.get('cuda')} but this torch uses CUDA {here['cuda']}; {REBUILD_HINT}"
        )
    if built["device_name"] != here["device_name"]:
        raise ArtifactError(
            f"{artifact}: compiled for {built['device_name']!r} but this machine's {built['device']} is "
            f"{here['device_name']!r}; {REBUILD_HINT}"
        )


def cache_dir() -> str:
    """Torch's local compile cache directory (where hot-loaded artefacts and built kernels go)."""
    try:
        from torch._inductor.runtime.cache_dir_utils import cache_dir as _inductor_cache_dir
    except ImportError:  # older torch: the same rule, by hand
        import getpass
        import os
        import tempfile

        path = os.environ.get("TORCHINDUCTOR_CACHE_DIR") or os.path.join(
            tempfile.gettempdir(), "torchinductor_" + "".join(c if c.isalnum() else "_" for c in getpass.getuser()))
        os.makedirs(path, exist_ok=True)
        return os.path.abspath(path)
    return _inductor_cache_dir()


def compile_module(net: Any, mode: str, device: str) -> Any:
    """``torch.compile`` ICNet for one static shape, no graph breaks allowed.

    With CUDA graphs (``reduce-overhead`` and ``max-autotune`` on CUDA) every call starts a new
    CUDA-graph step, so an inference loop never trips over outputs of the previous replay (the
    runner copies them to the host anyway).
    """
    import torch

    if mode not in COMPILE_MODES:
        raise IcnetDeployError(f"compile mode must be one of {', '.join(COMPILE_MODES)}, got {mode!r}")
    # CPU: kernels that read the OpenMP thread count at run time. By default Inductor bakes in
    # torch.get_num_threads() and keys its cache on it, so an engine built with 2 threads would
    # recompile from scratch when started with 4.
    options = None if device.startswith("cuda") else {"cpp.dynamic_threads": True}
    compiled = torch.compile(net, mode=None if mode == "default" else mode, dynamic=False, fullgraph=True,
                             options=options)
    if mode == "default" or not device.startswith("cuda"):
        return compiled

    def step(x: Any) -> Any:
        torch.compiler.cudagraph_mark_step_begin()
        return compiled(x)

    return step


def _fx_cache_counts() -> tuple[int, int] | None:
    try:
        from torch._dynamo.utils import counters  # private: only for reporting hit/miss

        return int(counters["inductor"]["fxgraph_cache_hit"]), int(counters["inductor"]["fxgraph_cache_miss"])
    except Exception:
        return None


def _cache_outcome(before: tuple[int, int] | None, after: tuple[int, int] | None) -> str | None:
    if before is None or after is None:
        return None
    if after[1] > before[1]:
        return "miss"
    return "hit" if after[0] > before[0] else "reused in-process"


ENGINE_KIND = "icnet-deploy torch engine"
ENGINE_VERSION = 2  # 2: the compiled graph is forward_coarse (version 1 compiled forward)
_KERNEL_NAME = re.compile(r"^kernels/[a-z0-9]{2}/[a-z0-9]+(\.main)?\.so$")


def loaded_kernel_binaries() -> list[Path]:
    """The C++ kernel libraries Inductor has built or loaded in this process (from its cache dir)."""
    try:
        from torch._inductor import codecache  # private: the in-memory index of loaded kernels

        classes, keys = [codecache.CppCodeCache], set()
        while classes:
            cls = classes.pop()
            keys |= {k for k in getattr(cls, "cache", {}) if isinstance(k, str)}
            classes.extend(cls.__subclasses__())
        root = Path(cache_dir())
        return sorted({p for key in keys if len(key) > 3 for p in (root / key[1:3]).glob(f"{key}*.so")})
    except Exception:
        return []


def write_engine_file(target: Path, cache_bytes: bytes, kernels: list[Path]) -> None:
    """Write the engine archive (see the module docstring) to ``target`` (a temp path: the caller renames)."""
    root = Path(cache_dir())
    header = {"kind": ENGINE_KIND, "version": ENGINE_VERSION, "cache_bytes": len(cache_bytes), "kernels": len(kernels)}
    with zipfile.ZipFile(target, "w", compression=zipfile.ZIP_DEFLATED, compresslevel=6) as archive:
        archive.writestr("engine.json", json.dumps(header, sort_keys=True))
        if cache_bytes:
            archive.writestr("cache_artifacts.bin", cache_bytes)
        for path in kernels:
            archive.write(path, "kernels/" + path.relative_to(root).as_posix())


def read_engine_file(artifact: Path) -> tuple[bytes, dict[str, bytes]]:
    """(cache-artefact bytes, {"xx/key.main.so": bytes}) of an engine archive; ``ArtifactError`` if it is not one."""
    try:
        with zipfile.ZipFile(artifact) as archive:
            names = set(archive.namelist())
            header = json.loads(archive.read("engine.json")) if "engine.json" in names else {}
            if header.get("kind") != ENGINE_KIND:
                raise ArtifactError(f"{artifact}: not a compiled torch engine (no icnet-deploy engine.json inside)")
            version = int(header.get("version", 0))
            if version > ENGINE_VERSION:
                raise ArtifactError(
                    f"{artifact}: engine archive version {version} is newer than this icnet-deploy reads"
                )
            if version < ENGINE_VERSION:  # its cache holds another graph: it would recompile from scratch
                raise ArtifactError(f"{artifact}: engine archive version {version} is from an older icnet-deploy; "
                                    f"{REBUILD_HINT}")
            bad = [n for n in names if n.startswith("kernels/") and not _KERNEL_NAME.match(n)]
            if bad:
                raise ArtifactError(f"{artifact}: unexpected file {bad[0]!r} in the engine archive")
            data = archive.read("cache_artifacts.bin") if "cache_artifacts.bin" in names else b""
            kernels = {n.removeprefix("kernels/"): archive.read(n) for n in sorted(names) if n.startswith("kernels/")}
    except (zipfile.BadZipFile, json.JSONDecodeError, OSError, KeyError) as exc:
        raise ArtifactError(f"{artifact}: not a readable compiled torch engine ({type(exc).__name__})") from None
    return data, kernels


def load_cache_artifacts(artifact: Path) -> dict[str, Any]:
    """Hot-load an engine's cache artefacts and kernels into torch's caches; what happened, as a dict."""
    import torch

    start = time.perf_counter()
    data, kernels = read_engine_file(artifact)
    root = Path(cache_dir())
    installed = 0
    for name, blob in kernels.items():
        target = root / name
        if not target.is_file():  # the same name is the same source and flags: never overwrite
            atomic_write_bytes(target, blob)
            installed += 1
    status = "loaded"
    load = getattr(getattr(torch, "compiler", None), "load_cache_artifacts", None)
    counts: dict[str, int] = {}
    if not data:
        status = "no cache artefacts"
    elif load is None:
        status = "unsupported by this torch"
    else:
        try:
            info = load(data)
        except Exception as exc:  # torch's deserialiser raises assorted errors on foreign bytes
            raise ArtifactError(
                f"{artifact}: torch cannot read its compiler cache artefacts ({type(exc).__name__}); {REBUILD_HINT}"
            ) from None
        counts = {k: len(v) for k, v in getattr(info, "artifacts", {}).items()} if info is not None else {}
    return {"status": status, "artifacts": counts, "kernels": len(kernels), "kernels_installed": installed,
            "seconds": round(time.perf_counter() - start, 3)}


def coarse_logits_module(net: Any) -> Any:
    """``net`` with ``forward_coarse`` as its forward: the graph ``torch.compile`` compiles."""
    import torch

    class CoarseLogits(torch.nn.Module):
        def __init__(self, inner: Any) -> None:
            super().__init__()
            self.inner = inner

        def forward(self, x: Any) -> Any:
            return self.inner.forward_coarse(x)

    return CoarseLogits(net)


class CompiledTorchRunner(TorchRunner):
    """Runs a compiled torch engine (see the module docstring); same interface as every Runner.

    ``artifact``: the ``.torch`` file (its ``.json`` manifest beside it). ``checkpoint``
    overrides where the weights are read from, ``model`` gives them as an ICNet already in
    memory (its ``checkpoint_info["sha256"]`` must match the manifest either way; the runner
    converts ``model`` in place: device, fp16, channels-last). ``artifact=None`` with a
    ``manifest`` compiles without cache artefacts (what the build does).
    After ``activate()``, ``startup`` holds the measured times: cache load, compile (first call)
    and the whole warm-up, in seconds, and whether Inductor's FX-graph cache hit.
    """

    backend = "torch-compiled"

    def __init__(self, artifact: str | Path | None, *, manifest: Manifest | None = None,
                 checkpoint: str | Path | None = None, model: Any = None, threads: int | None = None,
                 name: str = "") -> None:
        self.artifact = Path(artifact) if artifact is not None else None
        if manifest is None:
            if self.artifact is None:
                raise IcnetDeployError("compiled runner: give an engine file or a manifest")
            manifest = read_manifest(self.artifact)
        where = self.artifact or "compiled engine"
        if manifest.format != "torch":
            raise ArtifactError(f"{where}: is a {manifest.format} artifact, not a compiled torch engine")
        if manifest.input_hw is None or not isinstance(manifest.input_shape[0], int):
            raise ArtifactError(
                f"{where}: a compiled torch engine needs a static input shape, manifest has {manifest.input_shape}"
            )
        self.manifest = manifest
        self.compile_mode = str(manifest.details.get("compile_mode", "default"))
        super().__init__(model=model, checkpoint=None, device=str(manifest.details.get("device", "cpu")),
                         precision=manifest.precision, threads=threads, name=name or f"compiled-{manifest.precision}")
        self._checkpoint_override = Path(checkpoint) if checkpoint is not None else None
        self.batch_size = int(manifest.input_shape[0])
        self.input_height, self.input_width = manifest.input_hw
        self.size_rule = dict(manifest.size_rule)
        self.output_kind, self.num_classes = manifest.output_kind, manifest.num_classes
        self.mean, self.std = tuple(manifest.mean), tuple(manifest.std)
        self.startup: dict[str, Any] = {}

    def _resolve_checkpoint(self) -> Path:
        where = self.artifact or "compiled engine"
        if self._checkpoint_override is not None:
            candidates = [self._checkpoint_override]
        else:
            recorded = self.manifest.checkpoint_path
            if not recorded:
                raise ArtifactError(
                    f"{where}: its manifest names no checkpoint file (built from a model in memory); "
                    "pass checkpoint= or model="
                )
            from ..manifest import resolve_portable

            # relative to the engine's folder (also when the engine and its weights moved together)
            candidates = resolve_portable(recorded, self.artifact) if self.artifact is not None else []
            candidates.append(Path(recorded))
        for path in candidates:
            if path.is_file():
                return path
        raise ArtifactError(
            f"{where}: its checkpoint {candidates[0]} is missing (pass the weights' new location as checkpoint=)"
        )

    def _activate_impl(self) -> None:
        import torch

        where = self.artifact or "compiled engine"
        check_compatible(where, self.manifest)
        if self._model is None:
            self._checkpoint = self._resolve_checkpoint()
        started = time.perf_counter()
        super()._activate_impl()  # loads the weights (hashing them), fp16, channels-last
        sha = (self.checkpoint_info or {}).get("sha256")
        if sha != self.manifest.checkpoint_sha256:
            del self._net
            what = f"checkpoint {self._checkpoint}" if self._model is None else "the model given"
            raise ArtifactError(
                f"{where}: {what} has sha256 {str(sha)[:12]}…, the engine was built from "
                f"{str(self.manifest.checkpoint_sha256)[:12]}…"
            )
        cache = load_cache_artifacts(self.artifact) if self.artifact is not None else {"status": "none", "seconds": 0.0}
        self._net = compile_module(coarse_logits_module(self._net), self.compile_mode, self.device)
        # Compile now, on the engine's own shape and dtype, so the first infer() is not the slow one;
        # reduce-overhead records its CUDA graph on the second/third call.
        dummy = np.zeros((self.batch_size, 3, self.input_height, self.input_width), np.float32)
        counts = _fx_cache_counts()
        first = time.perf_counter()
        self._infer_impl(dummy)
        compile_s = time.perf_counter() - first
        outcome = _cache_outcome(counts, _fx_cache_counts())
        for _ in range(2):
            self._infer_impl(dummy)
        if self.device.startswith("cuda"):
            torch.cuda.synchronize()
        self.startup = {
            "cache": cache,
            "fx_graph_cache": outcome,  # hit | miss | reused in-process (Dynamo had compiled this already)
            "compile_s": round(compile_s, 2),
            "startup_s": round(time.perf_counter() - started, 2),
            "cache_dir": cache_dir(),
        }

    def _forward(self, x: Any, coarse: bool) -> Any:
        from ..model.icnet import upsample_logits

        out = self._net(x)  # the compiled forward_coarse
        return out if coarse else upsample_logits(out, (x.shape[-2], x.shape[-1]))

    def _describe_impl(self) -> dict[str, Any]:
        return {
            "device": self.device,
            "precision": self.precision,
            "provider": f"torch.compile inductor ({self.compile_mode})",
            "artifact": str(self.artifact) if self.artifact else None,
            **({"startup": self.startup} if self.startup else {}),
        }
