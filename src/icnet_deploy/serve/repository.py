"""``export_repository(engine, "model_repository/")``: a Triton model repository for a full Triton
Inference Server (``tritonserver --model-repository model_repository/``).

Four models, a client sends an image to the ensemble and gets labels::

    icnet/                 ensemble: image (uint8 H×W×3) → labels (uint8 H×W train ids)
    icnet_preprocess/      Python backend: Runner.prepare (resize to the engine's input, normalise)
    icnet_engine/          onnxruntime_onnx (model.onnx) or tensorrt_plan (model.plan); labels.txt
    icnet_postprocess/     Python backend: data.transforms.to_labels (exact labels at the image's size)

The ONNX model written is the engine up to its logits *before* the final ×4 upsample (as
``Runner.infer_for_labels`` runs it) and the postprocess computes the labels of that upsample at
the image's size, so the ensemble's labels are ``infer``'s. A TensorRT plan is copied as built; its
output (full logits or labels) is mapped back the same way ``infer`` maps an engine's output.

An engine with a dynamic batch gets ``max_batch_size`` and dynamic batching; one with a static batch
of 1 gets ``max_batch_size: 0`` (its full shape in the config, images sent without a batch
dimension). Instances: ``instances`` per model, on the CPU (ONNX) or GPU (TensorRT) unless ``kind``
says otherwise. The Python models need ``pip install icnet-deploy`` in Triton's Python environment
(no torch; see ``serve.python_models``).
"""

from __future__ import annotations

import json
import shutil
import tempfile
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from ..errors import ArtifactError, IcnetDeployError

__all__ = ["RepositoryOptions", "export_repository", "TRITON_TYPES"]

TRITON_TYPES = {"float32": "TYPE_FP32", "float16": "TYPE_FP16", "uint8": "TYPE_UINT8", "int32": "TYPE_INT32",
                "int64": "TYPE_INT64"}
_PLATFORMS = {"onnx": ("onnxruntime_onnx", "model.onnx"), "tensorrt": ("tensorrt_plan", "model.plan")}
_MODEL_PY = "from icnet_deploy.serve.python_models import {cls} as TritonPythonModel  # noqa: F401\n"


@dataclass
class RepositoryOptions:
    model_name: str = "icnet"  # the ensemble; the others are NAME_preprocess, NAME_engine, NAME_postprocess
    max_batch: int = 8
    queue_delay_us: int = 2000
    instances: int = 1
    kind: str = "auto"  # auto | cpu | gpu (instance groups)


def _dims(values: list) -> str:
    return "[ " + ", ".join(str(v) for v in values) + " ]"


def _tensor(name: str, dtype: str, dims: list, extra: str = "") -> str:
    return f'  {{\n    name: "{name}"\n    data_type: {dtype}\n    dims: {_dims(dims)}{extra}\n  }}'


def _io(key: str, tensors: list[str]) -> str:
    return f"{key} [\n" + ",\n".join(tensors) + "\n]\n"


def _batching(max_batch: int, queue_delay_us: int, instances: int, kind: str) -> tuple[str, str]:
    """(the batch line, the dynamic batching and instance groups) of one model's config."""
    text = f"max_batch_size: {max_batch}\n"
    tail = ""
    if max_batch > 0:
        tail += f"dynamic_batching {{\n  max_queue_delay_microseconds: {queue_delay_us}\n}}\n"
    if kind:
        tail += f"instance_group [\n  {{\n    count: {instances}\n    kind: {kind}\n  }}\n]\n"
    return text, tail


def _engine_output_dims(manifest: Any, graph: Any, batched: bool) -> tuple[str, str, list]:
    """(output name, Triton data type, dims without the batch) of what the repository's engine outputs."""
    if graph is not None:
        out = graph.graph.output[0]
        tensor_type = out.type.tensor_type
        dims = [d.dim_value if d.dim_value > 0 else -1 for d in tensor_type.shape.dim]
        import onnx

        dtype = onnx.helper.tensor_dtype_to_np_dtype(tensor_type.elem_type).name
        return out.name, TRITON_TYPES[dtype], dims[1:] if batched else dims
    h, w = manifest.input_hw or (-1, -1)
    dims = ([manifest.num_classes] if manifest.output_kind == "logits" else []) + [h, w]
    return manifest.output_name, TRITON_TYPES[manifest.output_dtype], dims if batched else [1, *dims]


def export_repository(engine: str | Path, out: str | Path, options: RepositoryOptions | None = None, *,
                      overwrite: bool = False) -> dict[str, Any]:
    """Write the repository (see the module docstring) to ``out``, atomically; returns what was written.

    Raises ``ArtifactError`` for an engine Triton cannot serve this way (compiled torch, a static
    batch other than 1) and ``IcnetDeployError`` when ``out`` exists and is not empty (unless ``overwrite``).
    """
    from ..manifest import read_manifest
    from .python_models import MANIFEST_NAME

    options = options or RepositoryOptions()
    if options.max_batch < 1 or options.instances < 1 or options.queue_delay_us < 0:
        raise IcnetDeployError("need max_batch ≥ 1, instances ≥ 1 and queue_delay_us ≥ 0")
    if options.kind not in ("auto", "cpu", "gpu"):
        raise IcnetDeployError(f"instance kind must be auto, cpu or gpu, got {options.kind!r}")
    engine, out = Path(engine), Path(out)
    if not engine.is_file():
        raise ArtifactError(f"{engine}: no such engine file")
    manifest = read_manifest(engine)
    if manifest.format not in _PLATFORMS:
        raise ArtifactError(f"{engine}: a {manifest.format} engine has no Triton backend of its own; export-triton "
                            "takes ONNX and TensorRT engines (serve any engine with `icnet-deploy serve`)")
    if (manifest.details or {}).get("plugin") and manifest.format == "onnx":
        raise ArtifactError(f"{engine}: ends in a TensorRT plugin ONNX Runtime cannot run; build a TensorRT engine from it")
    if out.exists() and (not out.is_dir() or any(out.iterdir())) and not overwrite:
        raise IcnetDeployError(f"{out}: exists and is not empty; choose another --out or pass --overwrite")
    batch = manifest.input_shape[0]
    if isinstance(batch, int) and batch != 1:
        raise ArtifactError(f"{engine}: has a static batch of {batch}; export it with batch 1 or --dynamic")
    batched = not isinstance(batch, int)
    max_batch = options.max_batch if batched else 0
    platform, filename = _PLATFORMS[manifest.format]
    kind = {"cpu": "KIND_CPU", "gpu": "KIND_GPU"}.get(options.kind) or (
        "KIND_GPU" if manifest.format == "tensorrt" else "KIND_CPU")

    graph = None
    if manifest.format == "onnx":
        import onnx

        from ..backends.onnxruntime import coarse_logits_graph

        proto = onnx.load(str(engine))
        graph = (coarse_logits_graph(proto) if manifest.output_kind == "logits" else None) or proto
    out_name, out_type, out_dims = _engine_output_dims(manifest, graph, batched)
    h, w = manifest.input_hw or (-1, -1)
    in_dims = [3, h, w] if batched else [1, 3, h, w]
    in_type = TRITON_TYPES[manifest.input_dtype]
    image = _tensor("image", "TYPE_UINT8", [-1, -1, 3])
    labels = _tensor("labels", "TYPE_UINT8", [-1, -1])
    size_dims = [2]
    names = {"pre": f"{options.model_name}_preprocess", "engine": f"{options.model_name}_engine",
             "post": f"{options.model_name}_postprocess"}
    head, tail = _batching(max_batch, options.queue_delay_us, options.instances, kind)
    _, python_tail = _batching(max_batch, options.queue_delay_us, options.instances, "KIND_CPU")
    label_file = '\n    label_filename: "labels.txt"' if manifest.output_kind == "logits" else ""
    configs = {
        names["engine"]: (f'name: "{names["engine"]}"\nplatform: "{platform}"\n{head}'
                          f'default_model_filename: "{filename}"\n'
                          + _io("input", [_tensor(manifest.input_name, in_type, in_dims)])
                          + _io("output", [_tensor(out_name, out_type, out_dims, label_file)]) + tail),
        names["pre"]: (f'name: "{names["pre"]}"\nbackend: "python"\n{head}'
                       + _io("input", [image])
                       + _io("output", [_tensor("input", in_type, in_dims), _tensor("image_size", "TYPE_INT32", size_dims)])
                       + python_tail),
        names["post"]: (f'name: "{names["post"]}"\nbackend: "python"\n{head}'
                        + _io("input", [_tensor("engine_output", out_type, out_dims),
                                        _tensor("image_size", "TYPE_INT32", size_dims)])
                        + _io("output", [labels]) + python_tail),
        options.model_name: (f'name: "{options.model_name}"\nplatform: "ensemble"\nmax_batch_size: {max_batch}\n'
                             + _io("input", [image]) + _io("output", [labels]) + _ensemble(names, manifest, out_name)),
    }
    parent = out.resolve().parent
    parent.mkdir(parents=True, exist_ok=True)
    staging = Path(tempfile.mkdtemp(prefix=f".{out.name}.", dir=parent))
    try:
        for model, text in configs.items():
            (staging / model / "1").mkdir(parents=True)
            (staging / model / "config.pbtxt").write_text(text)
        engine_dir = staging / names["engine"] / "1"
        if graph is not None:
            onnx.save(graph, str(engine_dir / filename))
        else:
            shutil.copyfile(engine, engine_dir / filename)
        (staging / names["engine"] / "labels.txt").write_text("\n".join(manifest.class_names) + "\n")
        for key, cls in (("pre", "PreprocessModel"), ("post", "PostprocessModel")):
            (staging / names[key] / "1" / "model.py").write_text(_MODEL_PY.format(cls=cls))
            (staging / names[key] / "1" / MANIFEST_NAME).write_text(json.dumps(manifest.to_dict(), indent=1))
        if out.exists():
            shutil.rmtree(out) if out.is_dir() else out.unlink()
        staging.rename(out)
    except BaseException:
        shutil.rmtree(staging, ignore_errors=True)
        raise
    return {"output": str(out), "platform": platform, "max_batch_size": max_batch, "instance_kind": kind,
            "instances": options.instances, "models": {m: str(out / m / "config.pbtxt") for m in configs},
            "engine_input": {"name": manifest.input_name, "dims": in_dims},
            "engine_output": {"name": out_name, "dims": out_dims, "coarse_logits": graph is not None and out_name != manifest.output_name}}


def _ensemble(names: dict[str, str], manifest: Any, out_name: str) -> str:
    def step(model: str, inputs: dict[str, str], outputs: dict[str, str]) -> str:
        maps = "".join(f'      input_map {{\n        key: "{k}"\n        value: "{v}"\n      }}\n' for k, v in inputs.items())
        maps += "".join(f'      output_map {{\n        key: "{k}"\n        value: "{v}"\n      }}\n' for k, v in outputs.items())
        return f'    {{\n      model_name: "{model}"\n      model_version: -1\n{maps}    }}'

    steps = [step(names["pre"], {"image": "image"}, {"input": "engine_input", "image_size": "image_size"}),
             step(names["engine"], {manifest.input_name: "engine_input"}, {out_name: "engine_output"}),
             step(names["post"], {"engine_output": "engine_output", "image_size": "image_size"}, {"labels": "labels"})]
    return "ensemble_scheduling {\n  step [\n" + ",\n".join(steps) + "\n  ]\n}\n"
