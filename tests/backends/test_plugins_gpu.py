"""UpsampleArgmax on CUDA: the Triton kernel gives the C kernel's (and the numpy reference's) labels exactly,
and CUDA runners make their labels on the GPU with it.

Needs torch with CUDA and triton (shipped with CUDA builds of torch); skips with the reason otherwise.
The kernel's arithmetic is also checked without a GPU, in Triton's interpreter (tests/test_plugins.py).
"""

from __future__ import annotations

import numpy as np
import pytest

pytestmark = pytest.mark.gpu

torch = pytest.importorskip("torch")
if not torch.cuda.is_available():
    pytest.skip("the Triton kernel needs a CUDA GPU; torch sees none", allow_module_level=True)
pytest.importorskip("triton", reason="triton is not installed (it ships with CUDA builds of torch)")

from icnet_deploy import plugins  # noqa: E402
from icnet_deploy.upsample import bilinear_argmax  # noqa: E402


def _reference(logits: np.ndarray, size) -> np.ndarray:
    return np.stack([bilinear_argmax(one, size) for one in logits])


@pytest.mark.parametrize(("batch", "src", "size"), [
    (1, (256, 512), (1024, 2048)), (1, (258, 514), (1025, 2049)), (1, (180, 320), (720, 1280)),
    (1, (16, 16), (64, 64)), (3, (64, 128), (256, 512)), (2, (1, 1), (7, 9)), (1, (40, 60), (40, 60)),
    (1, (64, 128), (50, 70)),
])
@pytest.mark.parametrize("dtype", [np.float32, np.float16])
def test_triton_kernel_equals_the_reference(batch, src, size, dtype):
    logits = np.random.default_rng(sum(size)).standard_normal((batch, 19, *src)).astype(dtype)
    got = plugins.upsample_argmax_cuda(torch.from_numpy(logits).cuda(), size)
    assert got.dtype == torch.uint8 and tuple(got.shape) == (batch, *size)
    assert np.array_equal(got.cpu().numpy(), _reference(logits, size))


def test_triton_kernel_int32_output_and_nan():
    logits = np.random.default_rng(0).standard_normal((1, 5, 12, 16)).astype(np.float32)
    logits[0, 2, 3, 3] = np.nan
    out = torch.empty((1, 48, 64), dtype=torch.int32, device="cuda")
    plugins.upsample_argmax_cuda(torch.from_numpy(logits).cuda(), (48, 64), out=out)
    assert np.array_equal(out.cpu().numpy(), _reference(logits, (48, 64)))


def test_eager_cuda_runner_makes_its_labels_on_the_gpu(small_checkpoint):
    from icnet_deploy.backends import load

    x = np.random.default_rng(2).standard_normal((2, 3, 128, 256)).astype(np.float32)
    with load(small_checkpoint, device="cuda") as runner:
        assert runner.labels_on_device and runner.describe()["labels_on"] == "gpu"
        on_gpu = runner.predict_labels(x, (100, 300))
        coarse = runner.infer_for_labels(x)
    # the CPU kernel on logits from a second run: equal but for what cuDNN's run-to-run differences flip
    assert (on_gpu == plugins.upsample_argmax(coarse, (100, 300))).mean() >= 0.999
