"""Slicer's Fill between slices and Grow from seeds on numpy arrays (needs slicer-core)."""
import os
import subprocess
import sys
import textwrap
from pathlib import Path

import numpy as np
import pytest

slicer = pytest.importorskip("slicer", reason="needs slicer-core (pip install slicer-core)")
if not hasattr(slicer, "vtkITKMorphologicalContourInterpolator"):  # the unrelated PyPI "slicer"
    pytest.skip("the installed `slicer` package is not slicer-core", allow_module_level=True)

from conftest import make_sphere  # noqa: E402
from SliceAndConquerLib.evaluation.slicer_filters import fill_between_slices, grow_from_seeds  # noqa: E402
from SliceAndConquerLib.metrics import dice  # noqa: E402

REPO = Path(__file__).resolve().parents[1]


def on_slices(truth, indices, axis=0):
    """A uint8 labelmap holding `truth` on the given slices of `axis` only."""
    labelmap = np.zeros(truth.shape, np.uint8)
    take = [slice(None)] * 3
    take[axis] = list(indices)
    labelmap[tuple(take)] = truth[tuple(take)]
    return labelmap


@pytest.fixture(scope="module")
def ball():
    """A ball of radius 14 in a 40^3 grid: present on slices 6..34 of every axis."""
    return make_sphere((40, 40, 40), radius=14)


@pytest.mark.parametrize("axis", [0, None])
def test_fill_given_every_slice_returns_it_exactly(axis):
    truth = make_sphere((24, 32, 28), radius=8)
    result = fill_between_slices(truth.astype(np.uint8), axis=axis)
    assert result.dtype == bool and result.shape == truth.shape
    assert dice(result, truth) == 1.0 and (result == truth).all()


def test_fill_three_slices_on_axis_0(ball):
    result = fill_between_slices(on_slices(ball, [10, 20, 30]), axis=0)
    assert dice(result, ball) > 0.8
    assert not result[:10].any() and not result[31:].any(), "filled outside the annotated range"
    for k in (10, 20, 30):
        assert (result[k] == ball[k]).all(), "an annotated slice changed"
    assert (fill_between_slices(on_slices(ball, [10, 20, 30])) == result).all(), "detection differs"


def test_fill_slices_on_axis_2_match_axis_0_transposed(ball):
    reference = fill_between_slices(on_slices(ball, [10, 20, 30]), axis=0)
    labelmap = on_slices(ball, [10, 20, 30], axis=2)
    result = fill_between_slices(labelmap, axis=2)
    assert dice(result, ball) > 0.8
    assert not result[:, :, :10].any() and not result[:, :, 31:].any()
    # The sphere is symmetric, so this is the axis-0 problem with axes 0 and 2 swapped.
    assert (result == reference.transpose(2, 1, 0)).all()
    assert (fill_between_slices(labelmap) == result).all()      # detected without the axis
    for wrong_axis in (0, 1):                                    # the axis is honoured (2 - axis in vtk)
        assert (fill_between_slices(labelmap, axis=wrong_axis) == (labelmap > 0)).all()


def test_fill_anisotropic_spacing():
    spacing = (3.0, 1.0, 1.0)
    truth = make_sphere((16, 40, 40), radius=18, spacing=spacing)   # present on slices 2..14
    labelmap = on_slices(truth, [3, 8, 12])
    result = fill_between_slices(labelmap, spacing, axis=0)
    assert dice(result, truth) > 0.8
    assert not result[:3].any() and not result[13:].any()
    assert (fill_between_slices(labelmap, axis=0) == result).all()  # spacing does not change the shapes


def test_grow_from_seeds_bright_sphere_in_noise():
    rng = np.random.default_rng(0)
    truth = make_sphere((32, 36, 40), radius=10)
    image = (truth * 100.0 + rng.normal(0, 20, truth.shape)).astype(np.float32)
    seeds = np.zeros(truth.shape, np.uint8)
    seeds[make_sphere(truth.shape, radius=3)] = 1          # foreground blob in the centre
    seeds[~make_sphere(truth.shape, radius=15)] = 2        # background shell out to the border
    result = grow_from_seeds(image, seeds)
    assert result.dtype == bool and result.shape == truth.shape
    assert dice(result, truth) > 0.9
    assert result[seeds == 1].all() and not result[seeds == 2].any(), "seeds are hard constraints"
    assert dice(grow_from_seeds(image.astype(np.int16), seeds), truth) > 0.9   # integer images too


def test_grow_from_seeds_2d():
    rng = np.random.default_rng(1)
    truth = make_sphere((1, 48, 40), centre=(0, 24, 20), radius=12)
    image = truth * 80.0 + rng.normal(0, 15, truth.shape)
    seeds = np.zeros(truth.shape, np.uint8)
    seeds[make_sphere(truth.shape, centre=(0, 24, 20), radius=3)] = 1
    seeds[:, [0, -1], :] = seeds[:, :, [0, -1]] = 2       # background frame on the image border
    result = grow_from_seeds(image, seeds, (1.0, 0.8, 0.8))
    assert result.shape == truth.shape
    assert dice(result, truth) > 0.9


def test_grow_from_seeds_spacing_is_in_numpy_order():
    """With a distance penalty on a flat image, each pixel goes to the physically nearest seed."""
    image = np.zeros((1, 11, 11), np.float32)
    seeds = np.zeros(image.shape, np.uint8)
    seeds[0, 2, 5], seeds[0, 5, 2] = 1, 2      # 3 rows above / 3 columns left of pixel (5, 5)
    assert grow_from_seeds(image, seeds, (1.0, 1.0, 2.0), distance_penalty=1.0)[0, 5, 5]       # rows shorter
    assert not grow_from_seeds(image, seeds, (1.0, 2.0, 1.0), distance_penalty=1.0)[0, 5, 5]   # columns shorter


def test_process_exits_cleanly_after_interpolating():
    """Regression: with ITK's TBB threader, TBB worker threads destroyed the interpolator's
    thread_local ITK filters after ITK's globals at exit (SIGSEGV, exit code 139, in most runs of
    this script). The module makes Slicer's ITK use its Platform threader instead."""
    script = textwrap.dedent("""
        import os, time
        import numpy as np
        from SliceAndConquerLib.evaluation.slicer_filters import fill_between_slices
        assert "ITK_GLOBAL_DEFAULT_THREADER" not in os.environ, "the variable was not restored"
        z, y, x = np.ogrid[:64, :64, :64]
        ball = (z - 32) ** 2 + (y - 32) ** 2 + (x - 32) ** 2 < 400
        labelmap = np.zeros(ball.shape, np.uint8)
        labelmap[12:53:4] = ball[12:53:4]
        for axis in (0, None):
            assert fill_between_slices(labelmap, axis=axis).sum() > labelmap.sum()
        time.sleep(0.3)  # lets the worker threads go idle: the crash was near-certain then
    """)
    env = {k: v for k, v in os.environ.items() if k != "ITK_GLOBAL_DEFAULT_THREADER"}
    env["PYTHONPATH"] = os.pathsep.join([str(REPO)] + [p for p in [env.get("PYTHONPATH")] if p])
    done = subprocess.run([sys.executable, "-c", script], env=env, capture_output=True, text=True, timeout=120)
    assert done.returncode == 0, f"exit code {done.returncode}\n{done.stderr[-2000:]}"
