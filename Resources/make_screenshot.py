"""Render the Extensions Index screenshot with Slicer's own slice views (offscreen, no application).

The robot user of the benchmarks segments the real sample CT (`snc data fetch` puts it in the cache;
~/.cache/sliceandconquer/sample.json) through the module's logic with the best installed pipeline; the
Red, Yellow and Green views (slicer-core's displayable managers, rendered with EGL as in
Testing/test_slice_views.py) show the result, and the view matching the recommended slice is moved onto it.

Usage (from the repository root, in the project's environment):
    python Resources/make_screenshot.py [--iterations 3] [--out Resources/Screenshots/SliceAndConquer-screenshot.png]
"""
import argparse
import os
import sys
import time
import types
from pathlib import Path

os.environ.setdefault("VTK_DEFAULT_OPENGL_WINDOW", "vtkEGLRenderWindow")
REPO = Path(__file__).resolve().parent.parent
sys.path[:0] = [str(REPO), str(REPO / "Testing")]

import numpy as np  # noqa: E402


def main(argv=None):
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--manifest", default=str(Path.home() / ".cache/sliceandconquer/sample.json"))
    parser.add_argument("--iterations", type=int, default=3)
    parser.add_argument("--size", type=int, default=360, help="pixels of each view")
    parser.add_argument("--out", default=str(REPO / "Resources/Screenshots/SliceAndConquer-screenshot.png"))
    args = parser.parse_args(argv)

    import slicer

    import slice_views
    from slicer_scene import build_scene
    from SliceAndConquerLib.data.manifest import read_manifest
    from SliceAndConquerLib.evaluation.robot import run_robot
    from SliceAndConquerLib.metrics import dice
    from SliceAndConquerLib.pipelines import best_pipeline
    from SliceAndConquerLib.slicer_logic import SliceAndConquerLogic

    shim = types.SimpleNamespace(setattr=lambda obj, name, value, raising=True: setattr(obj, name, value))
    built = build_scene(shim)
    case = read_manifest(args.manifest)[0]
    volume, truth = case.load()

    # SimpleITK (LPS) geometry -> Slicer's IJK-to-RAS.
    ijk_to_lps = np.eye(4)
    ijk_to_lps[:3, :3] = np.array(volume.direction).reshape(3, 3) * np.array(volume.spacing[::-1])
    ijk_to_lps[:3, 3] = volume.origin
    ijk_to_ras = np.diag([-1.0, -1.0, 1.0, 1.0]) @ ijk_to_lps
    volume_node = slicer.util.addVolumeFromArray(volume.array, ijkToRAS=slicer.util.vtkMatrixFromArray(ijk_to_ras),
                                                 name="CT")
    display = volume_node.GetDisplayNode()
    display.AutoWindowLevelOff()
    display.SetWindowLevel(400, 40)   # soft tissue
    segmentation = built.scene.AddNewNodeByClass("vtkMRMLSegmentationNode")

    name, factory, _ = best_pipeline()
    logic = SliceAndConquerLogic()
    logic.start(volume_node, segmentation, "target", session_factory=factory)
    segmentation.GetSegmentation().GetSegment("target").SetName("right kidney")
    segmentation.GetSegmentation().GetSegment("target").SetColor(0.95, 0.6, 0.15)
    segmentation.GetDisplayNode().SetOpacity2DFill(0.45)
    started = time.perf_counter()
    run = run_robot(logic.session, truth, iterations=args.iterations)
    logic.refresh_segment()
    recommendation = logic.session.recommend()
    print(f"{case.name}: {name}, DSC {[round(d, 3) for d in run.dice]} after {run.clicks} clicks "
          f"({time.perf_counter() - started:.0f} s); recommended next {recommendation}")

    views = slice_views.build_slice_views(built, size=(args.size, args.size))
    centre_kji = np.argwhere(logic.session.mask3d).mean(axis=0)
    centre_ras = logic.ijk_to_ras(centre_kji[::-1])
    for view in views.values():
        view.show_volume(volume_node)
        view.slice_node.JumpSliceByCentering(*centre_ras)
        fov = view.slice_node.GetFieldOfView()
        view.slice_node.SetFieldOfView(fov[0] * 0.6, fov[1] * 0.6, fov[2])  # zoom in on the target
        view.slice_node.JumpSliceByCentering(*centre_ras)
    if recommendation is not None:
        moved = logic.jump_to_plane(recommendation)
        print(f"the {moved.GetLayoutName()} view moved to the recommended slice")
    out = Path(args.out)
    out.parent.mkdir(parents=True, exist_ok=True)
    slice_views.save_side_by_side(views, out)
    print(f"wrote {out} (3D DSC {dice(logic.session.mask3d, truth):.3f})")
    for view in views.values():
        view.close()


if __name__ == "__main__":
    main()
