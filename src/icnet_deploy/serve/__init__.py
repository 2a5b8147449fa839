"""Beyond one process: engines behind Triton Inference Server, and folders over a Ray cluster.

* ``triton`` — ``serve(engine, ServeOptions(...))``: any engine on Triton through PyTriton
  (input ``image``: uint8 H×W×3, outputs ``labels`` and optionally ``logits``); ``LabelModel`` is
  the inference callable, usable without a server.
* ``client`` — ``bench_server``: throughput and latency of a running server from concurrent clients.
* ``repository`` — ``export_repository``: a Triton model repository (engine, pre/post-processing
  Python models, an ensemble) for a full Triton Inference Server.
* ``ray`` — ``infer_images_ray``: ``infer``'s folder inference, distributed with Ray Data.

Pre- and post-processing are ``infer``'s own functions (``Runner.label_images``), so a served or
distributed result is byte-identical to ``infer``'s. Each module imports its framework (PyTriton,
tritonclient, Ray) only when called.
"""
