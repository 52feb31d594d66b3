"""The CUDA path: the shipped models on a GPU give the CPU's masks. Skipped without CUDA (CI has
none). Passed on a lent H200 (torch 2.11, 2026-11-28; `pytest --noconftest Testing/test_cuda.py`);
a first check there gave snc masks DSC 0.9996 between the devices and identical f2d-prior masks."""
import numpy as np
import pytest
import torch
from scipy import ndimage

from SliceAndConquerLib.evaluation.robot import run_robot
from SliceAndConquerLib.metrics import dice
from SliceAndConquerLib.models.weights import shipped

pytestmark = pytest.mark.skipif(not torch.cuda.is_available() or shipped("f3d") is None,
                                reason="needs CUDA and the shipped weights")


def _blob():
    rng = np.random.default_rng(0)
    field = ndimage.gaussian_filter(rng.normal(size=(64, 96, 96)), 8)
    labels, _ = ndimage.label(field > np.quantile(field, 0.9))
    truth = labels == 1 + np.argmax(np.bincount(labels.ravel())[1:])
    image = (0.3 + 0.4 * truth + 0.05 * rng.normal(size=truth.shape)).astype(np.float32)
    return image, truth


@pytest.mark.parametrize("pipeline", ["snc", "f2d-prior", "f2d-sweep"])
def test_gpu_masks_match_cpu(pipeline):
    from SliceAndConquerLib.pipelines import f2d_prior_session, f2d_sweep_session, snc_session

    image, truth = _blob()
    masks = {}
    for device in ("cpu", "cuda"):
        if pipeline == "snc":  # no alignment: it runs on the CPU either way
            session = snc_session(image, (2.0, 1.0, 1.0), device=device, align=False)
        else:
            factory = f2d_sweep_session if pipeline == "f2d-sweep" else f2d_prior_session
            session = factory(image, (2.0, 1.0, 1.0), device=device)
        run_robot(session, truth, iterations=4)
        masks[device] = session.mask3d
    assert dice(masks["cpu"], masks["cuda"]) > 0.99
