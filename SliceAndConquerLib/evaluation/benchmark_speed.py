"""`snc benchmark speed`: per-click f2D latency, f3D on its ROI, a whole snc accept step, the default
pipeline's accept step on the same volume and on a CT-sized one, peak memory.

Synthetic volumes of CT size (a bright ellipsoid in noise) so that the numbers depend on sizes, not
data; the shipped weights when present (speed does not depend on the weights' values, but the JSON
says which were used)."""
from __future__ import annotations

import json
import resource
import statistics
import subprocess
import sys
import time

import numpy as np
import torch

from ..models.f2d import F2D
from ..models.f3d import F3D
from ..models.predictor2d import Network2D, load_f2d
from ..models.predictor3d import Network3D, load_f3d
from ..models.roi import roi_for
from ..models.weights import shipped
from ..pipelines import best_pipeline, snc_session
from ..session import AcceptedSlice, Plane

VOLUME_SHAPE = (128, 256, 256)     # [k, j, i]: 256 x 256 x 128 voxels
CT_SHAPE = (300, 512, 512)


def predictors(device="cpu"):
    f2d = load_f2d(shipped("f2d"), device) if shipped("f2d") else Network2D(F2D(), device)
    f3d = load_f3d(shipped("f3d"), device) if shipped("f3d") else Network3D(F3D(), device)
    names = {name: "shipped" if shipped(name) else "untrained" for name in ("f2d", "f3d")}
    return f2d, f3d, names


def synthetic_volume(shape, seed=0):
    rng = np.random.default_rng(seed)
    grids = np.ogrid[tuple(slice(0, n) for n in shape)]
    radii = [n / 5 for n in shape]
    inside = sum(((g - n / 2) / r) ** 2 for g, n, r in zip(grids, shape, radii)) <= 1
    image = rng.standard_normal(shape, dtype=np.float32)  # float32 throughout: the peak memory
    image *= 20                                            # measured is the session's, not this
    image[inside] += 200
    return image, inside


def _session(image, f2d, f3d):
    """The snc pipeline's session (`pipelines.snc_session`) with these predictors."""
    return snc_session(image, (2.0, 0.8, 0.8), f2d=f2d, f3d=f3d)


def _click_and_accept(session, truth, plane):
    session.begin_slice(plane)
    row, col = [n // 2 for n in plane.of(truth).shape]
    session.click(row, col, True)
    session.accept_slice()
    return session.recommend()


def time_iteration(f2d, f3d, repeats=5):
    image, truth = synthetic_volume(VOLUME_SHAPE)
    session = _session(image, f2d, f3d)
    centre = [n // 2 for n in VOLUME_SHAPE]
    plane = Plane(0, centre[0])
    session.begin_slice(plane)
    session.click(centre[1], centre[2], True)
    mask2d = session.mask2d
    accepted = [AcceptedSlice(plane, tuple(session.clicks), mask2d)]
    roi = roi_for(image.shape, session.spacing, None, accepted)
    f3d_times, step_times = [], []
    for _ in range(repeats + 1):
        start = time.perf_counter()
        f3d.predict(session.image, session.spacing, session.mask3d, accepted)  # ROI, grid, forward, paste
        f3d_times.append(time.perf_counter() - start)
        start = time.perf_counter()
        session.begin_slice(plane)
        session.click(centre[1], centre[2], True)
        session.accept_slice()
        session.recommend()
        step_times.append(time.perf_counter() - start)
        session.undo_slice()
    return statistics.median(f3d_times[1:]), statistics.median(step_times[1:]), list(roi.grid)


def time_accepts(factory, shape, accepts=3) -> float:
    """Median seconds of one click + accept + recommendation of the session `factory(image, spacing)`
    makes, on a synthetic volume of `shape`."""
    image, truth = synthetic_volume(shape)
    session = factory(image, (2.0, 0.8, 0.8))
    plane, times = Plane(0, shape[0] // 2), []
    for _ in range(accepts):
        start = time.perf_counter()
        plane = _click_and_accept(session, truth, plane) or Plane(1, shape[1] // 2)
        times.append(time.perf_counter() - start)
    return statistics.median(times)


def peak_memory_mb(pipeline: str) -> int:
    """Peak RSS of a fresh process that clicks and accepts with `pipeline` ("snc" or "default") on a
    512 x 512 x 300 CT-sized volume."""
    code = f"from SliceAndConquerLib.evaluation.benchmark_speed import _memory_run; _memory_run('{pipeline}')"
    result = subprocess.run([sys.executable, "-c", code], check=True, capture_output=True, text=True)
    return int(result.stdout.split()[-1])


def _memory_run(pipeline: str):
    torch.set_num_threads(2)
    image, truth = synthetic_volume(CT_SHAPE)
    if pipeline == "snc":
        f2d, f3d, _ = predictors()
        session = _session(image, f2d, f3d)
    else:
        session = best_pipeline()[1](image, (2.0, 0.8, 0.8))
    del image
    plane = Plane(0, CT_SHAPE[0] // 2)
    for _ in range(3):
        plane = _click_and_accept(session, truth, plane) or Plane(1, CT_SHAPE[1] // 2)
    print(_peak_rss_mb())


def _peak_rss_mb() -> int:
    """This process's peak resident memory. /proc's VmHWM where there is one: ru_maxrss would also
    count the parent's memory at the fork that started this process (Linux keeps it across exec)."""
    try:
        with open("/proc/self/status") as status:
            return next(int(line.split()[1]) // 1024 for line in status if line.startswith("VmHWM:"))
    except (OSError, StopIteration):
        peak = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss  # kB on Linux, bytes on macOS
        return int(peak / (2 ** 20 if sys.platform == "darwin" else 1024))


def _size(shape) -> str:
    """[k, j, i] -> "IxJxK", the way volume sizes are written."""
    return "x".join(str(n) for n in reversed(shape))


def benchmark(threads: int = 2) -> dict:
    # imported here: the memory runs import this module, and must hold only what the Slicer module
    # imports (benchmark_f2d brings the evaluation's file readers, SimpleITK's ~110 MB among them)
    from .benchmark_f2d import latency_ms

    torch.set_num_threads(threads)
    f2d, f3d, names = predictors()
    f3d_s, iteration_s, grid = time_iteration(f2d, f3d)
    return {"f2d_ms_512": latency_ms(f2d, 512), "f3d_s_roi": round(f3d_s, 3), "roi_shape": grid,
            "iteration_s": round(iteration_s, 3), "volume_shape": _size(VOLUME_SHAPE),
            "default_pipeline": best_pipeline()[0],
            "default_accept_s": {_size(shape): round(time_accepts(best_pipeline()[1], shape), 3)
                                 for shape in (VOLUME_SHAPE, CT_SHAPE)},
            "snc_accept_s": {_size(shape): round(time_accepts(lambda i, s: _session(i, f2d, f3d), shape), 3)
                             for shape in (VOLUME_SHAPE, CT_SHAPE)},
            "peak_rss_mb": {name: peak_memory_mb(name) for name in ("snc", "default")},
            "threads": torch.get_num_threads(), "device": "cpu", "weights": names}


def main(out):
    result = benchmark()
    out.parent.mkdir(parents=True, exist_ok=True)
    out.write_text(json.dumps(result, indent=1) + "\n")
    return result
