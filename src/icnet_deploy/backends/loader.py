"""``load(artifact)`` → the Runner for it, chosen by its manifest (never by its file name alone).

=============================  =====================================================
what you pass                  runner
=============================  =====================================================
``None`` / ``"eager"``         ``TorchRunner`` on the shipped checkpoint (eager)
``*.safetensors``/``.pth``     ``TorchRunner`` on those weights (eager)
manifest ``format="onnx"``     ``OnnxRuntimeRunner`` (CPU / CUDA / TensorRT EP)
manifest ``format="tensorrt"`` ``backends.tensorrt.TensorRTRunner``
manifest ``format="torch"``    ``backends.torch_compiled.CompiledTorchRunner``
=============================  =====================================================

Every backend module is imported only when its artifact is loaded, so a machine without
onnxruntime or TensorRT can still run the others; a missing one raises ``BackendUnavailable``.
"""

from __future__ import annotations

from pathlib import Path

from ..errors import ArtifactError, BackendUnavailable, IcnetDeployError
from .base import Runner

__all__ = ["load", "reference_checkpoint", "eager_reference", "eager_precision", "CHECKPOINT_SUFFIXES", "EAGER"]

CHECKPOINT_SUFFIXES = (".safetensors", ".pth", ".pt")
EAGER = "eager"  # the engine name meaning "the shipped checkpoint, eager PyTorch"


def eager_precision(spec: str) -> str | None:
    """The precision an engine name asks eager PyTorch for (``eager`` → fp32, ``eager-fp16`` → fp16);
    None when ``spec`` names an artifact."""
    spec = str(spec)
    if spec == EAGER:
        return "fp32"
    return spec.split("-", 1)[1] if spec.startswith(EAGER + "-") else None


def load(artifact_or_checkpoint: str | Path | None = None, *, device: str = "cpu", provider: str | None = None,
         precision: str | None = None, threads: int | None = None, name: str = "") -> Runner:
    """The Runner for an engine file, a checkpoint, or the shipped model (``None`` or ``"eager"``).

    ``device``: ``"cpu"`` or ``"cuda"`` (``"cuda:1"``). ``provider`` (ONNX only): ``"cpu"``,
    ``"cuda"`` or ``"tensorrt"`` — or an onnxruntime provider name; default: CUDA when
    ``device`` is cuda, else CPU. ``precision`` (eager only): ``"fp32"`` or ``"fp16"`` (CUDA).
    ``threads``: CPU intra-op threads (None: the framework's default).

    Nothing is loaded until the runner is activated (``with load(...) as runner:``).
    """
    if artifact_or_checkpoint is None or str(artifact_or_checkpoint) == EAGER:
        from .torch_eager import TorchRunner

        return TorchRunner(checkpoint=None, device=device, precision=precision or "fp32", threads=threads,
                           name=name or _eager_name(precision))
    path = Path(artifact_or_checkpoint)
    if not path.exists():
        raise ArtifactError(f"{path}: no such engine or checkpoint file")
    if path.is_dir():
        raise ArtifactError(f"{path}: is a folder; give an engine file (.onnx, .engine, …) or a checkpoint")
    if path.suffix.lower() in CHECKPOINT_SUFFIXES:
        from .torch_eager import TorchRunner

        return TorchRunner(checkpoint=path, device=device, precision=precision or "fp32", threads=threads,
                           name=name or _eager_name(precision))

    from ..manifest import read_manifest

    manifest = read_manifest(path)
    if precision is not None and precision != manifest.precision:
        raise IcnetDeployError(f"{path}: is a {manifest.precision} engine; precision is fixed when an engine is built "
                               f"(asked for {precision})")
    if manifest.format == "onnx":
        from .onnxruntime import OnnxRuntimeRunner

        if manifest.precision == "int8" and not device.startswith("cuda") and provider in (None, "cpu"):
            _warn_other_cpu(path, manifest)

        return OnnxRuntimeRunner(path, manifest=manifest, device=device, provider=provider, threads=threads, name=name)
    if manifest.format == "tensorrt":
        try:
            from .tensorrt import TensorRTRunner
        except ImportError as exc:  # the module itself, or tensorrt/cuda-python under it
            raise BackendUnavailable(f"{path}: is a TensorRT engine, but the TensorRT backend cannot be imported "
                                     f"here ({exc}); install icnet-deploy[tensorrt] on a machine with a GPU") from None
        # it checks the engine against this GPU and TensorRT version when activated
        return TensorRTRunner(path, manifest=manifest, device=device if device.startswith("cuda") else "cuda", name=name)
    if manifest.format == "torch":
        try:
            from .torch_compiled import CompiledTorchRunner
        except ImportError as exc:
            raise BackendUnavailable(f"{path}: is a compiled torch engine, but that backend cannot be imported ({exc})") from None
        return CompiledTorchRunner(path, manifest=manifest, threads=threads, name=name)
    raise ArtifactError(f"{path}: manifest format {manifest.format!r} has no runner")  # pragma: no cover - Manifest refuses


def _eager_name(precision: str | None) -> str:
    return f"eager-{precision or 'fp32'}"


def reference_checkpoint(manifest, checkpoint: str | Path | None = None, artifact: str | Path | None = None) -> Path:
    """The checkpoint an artifact was built from, checked by sha256 (what ``check`` compares against).

    Looks at ``checkpoint`` if given, else the manifest's ``checkpoint_path`` (relative to the artifact's
    folder), a file of that name beside the artifact, and the shipped checkpoint. Raises ``ArtifactError`` when none has the
    sha256 the manifest recorded (naming the mismatch), or when the artifact came from random weights.
    """
    from ..hashing import sha256_file
    from ..model.weights import shipped_checkpoint

    want = manifest.checkpoint_sha256
    where = str(artifact) if artifact else "engine"
    if want is None:
        raise ArtifactError(f"{where}: was exported from random weights (no checkpoint file), so there is no eager "
                            "reference to compare it with; export it from a checkpoint")
    if checkpoint is not None:
        candidates = [Path(checkpoint)]
    else:
        candidates = []
        if manifest.checkpoint_path:
            from ..manifest import resolve_portable

            if artifact is not None:
                candidates += resolve_portable(manifest.checkpoint_path, artifact)
            candidates.append(Path(manifest.checkpoint_path))
        shipped = shipped_checkpoint()
        if shipped is not None:
            candidates.append(shipped)
    mismatched = []
    for path in dict.fromkeys(candidates):  # de-duplicated, in order
        if not path.is_file():
            continue
        sha = sha256_file(path)
        if sha == want:
            return path
        mismatched.append(f"{path} (sha256 {sha[:12]}…)")
    if mismatched:
        raise ArtifactError(f"{where}: was built from checkpoint sha256 {want[:12]}…, but {', '.join(mismatched)} "
                            "differs: comparing against other weights would be meaningless (pass --checkpoint)")
    if checkpoint is not None:
        raise ArtifactError(f"{checkpoint}: checkpoint not found")
    raise ArtifactError(f"{where}: its checkpoint {manifest.checkpoint_path or '(unnamed)'} was not found "
                        "(pass --checkpoint with the weights it was built from)")


def eager_reference(manifest=None, checkpoint: str | Path | None = None, artifact: str | Path | None = None, *,
                    strict: bool = True, device: str = "cpu", precision: str = "fp32", threads: int | None = None,
                    name: str = "") -> Runner:
    """The eager runner an artifact is judged against (``strict``: its own checkpoint, sha256-checked).

    Without ``strict`` (timing only) a missing checkpoint falls back to the shipped one, or to random
    weights of the manifest's model config — same architecture, same speed. ``manifest=None``: the
    checkpoint (or the shipped model).
    """
    from .torch_eager import TorchRunner

    name = name or _eager_name(precision)
    if manifest is None:
        return TorchRunner(checkpoint=checkpoint, device=device, precision=precision, threads=threads, name=name)
    try:
        path = reference_checkpoint(manifest, checkpoint, artifact)
    except ArtifactError:
        if strict:
            raise
        import json

        import torch

        from ..model.config import ICNetConfig
        from ..model.icnet import ICNet

        config = ICNetConfig.from_json(json.dumps(manifest.model_config))
        with torch.random.fork_rng():
            torch.manual_seed(0)
            model = ICNet(config).eval()
        return TorchRunner(model=model, device=device, precision=precision, threads=threads, name=name)
    return TorchRunner(checkpoint=path, device=device, precision=precision, threads=threads, name=name)


def _warn_other_cpu(path: Path, manifest: object) -> None:
    """An INT8 ONNX engine on a CPU whose INT8 kernels differ from the build machine's: say so
    (a ``UserWarning``; the CLI prints it as one line)."""
    import warnings

    from ..machine import int8_mismatch

    message = int8_mismatch(getattr(manifest, "details", {}).get("cpu"))
    if message:
        warnings.warn(f"{path}: {message}", UserWarning, stacklevel=3)
