"""The native part of the build: the fused ops' CPU kernels, compiled when a C compiler is present.

Everything else is declared in pyproject.toml. Each kernel in ``plugins/`` is a plain C shared
library (no Python C-API) built by setuptools' ``build_ext`` into the package
(``icnet_deploy/_upsample_argmax.*.so``; in place for editable installs) and loaded with ctypes by
``icnet_deploy.plugins``. The build is optional: without a compiler (or on a platform without
pthreads) the install still succeeds and the numpy reference serves instead, which ``icnet-deploy
info`` reports. The sha256 of the C source is compiled in, so the loader can refuse a library left
over from an older source (an editable install whose source changed since).

``plugins/`` is also the Python package ``icnet_deploy.kernels`` (the Triton kernel and the
TensorRT plugin), so the sources live in one place and ship with the package.
"""

from __future__ import annotations

import hashlib
import os
from pathlib import Path

from setuptools import Extension, find_namespace_packages, setup

ROOT = Path(__file__).resolve().parent
KERNELS = {"icnet_deploy._upsample_argmax": "plugins/upsample_argmax/upsample_argmax.c"}
# -ffp-contract=off: no fused multiply-add, which would round unlike the numpy reference
CFLAGS = ["-O3", "-std=c11", "-ffp-contract=off", "-fno-fast-math", "-pthread", "-fvisibility=default"]


def native_kernels() -> list[Extension]:
    if os.name != "posix" or os.environ.get("ICNET_DEPLOY_NO_NATIVE", "") not in ("", "0"):
        return []
    out = []
    for name, source in KERNELS.items():
        sha = hashlib.sha256((ROOT / source).read_bytes()).hexdigest()
        out.append(Extension(name, [source], extra_compile_args=CFLAGS, extra_link_args=["-pthread"],
                             define_macros=[("UA_SOURCE_SHA256", f'"{sha}"')], optional=True))
    return out


setup(
    packages=find_namespace_packages("src") + ["icnet_deploy.kernels", "icnet_deploy.kernels.upsample_argmax"],
    package_dir={"": "src", "icnet_deploy.kernels": "plugins"},
    ext_modules=native_kernels(),
)
