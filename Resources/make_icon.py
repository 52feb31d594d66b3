"""Draw the SliceAndConquer icon (128x128 PNG).

Three stacked, translucent slices in Slicer's view colours (Red, Yellow,
Green), a segmented blob passing through them, and a click on the top slice.

Usage (from the repository root; needs numpy and matplotlib):
    python Resources/make_icon.py
writes SliceAndConquer.png (extension icon) and
SliceAndConquer/Resources/Icons/SliceAndConquer.png (module icon).
"""

import argparse
from pathlib import Path

import matplotlib

matplotlib.use("Agg")
import matplotlib.pyplot as plt  # noqa: E402
import numpy as np  # noqa: E402
from matplotlib.patches import Circle, Polygon  # noqa: E402

REPO = Path(__file__).resolve().parent.parent
OUTPUTS = [REPO / "SliceAndConquer.png", REPO / "SliceAndConquer/Resources/Icons/SliceAndConquer.png"]

SIZE_PX = 128
# Slice view colours of 3D Slicer (Red, Yellow, Green), top to bottom.
SLICE_COLORS = ["#F34A33", "#EDD54C", "#6EB04B"]
SLICE_HEIGHTS = [0.54, 0.0, -0.54]  # canvas units, top to bottom
PLANE_HALF = 0.53  # half-size of a slice, canvas units: keeps the drawing inside the canvas
TILT = 0.30  # vertical squash of the planes (0.5 would be isometric); flatter reads better when small
BLOB_FILL = "#2E86DE"
BLOB_EDGE = "#0B3C6E"
OUTLINE = "#333333"

COS30 = np.cos(np.pi / 6)
# Mouse pointer outline, tip at (0, 0), pointing up-left, about 1 unit tall.
CURSOR = np.array([(0, 0), (0, -1.0), (0.24, -0.76), (0.42, -1.12), (0.56, -1.05), (0.38, -0.70), (0.72, -0.70)])


def project(u, v, z):
    """Oblique projection of plane coordinates (u, v) in [-1, 1] at height z to the canvas."""
    u, v = np.asarray(u, float) * PLANE_HALF, np.asarray(v, float) * PLANE_HALF
    return np.stack([(u - v) * COS30, (u + v) * TILT + z], axis=-1)


def blob_section(z, n=72):
    """Outline (u, v) of the blob's cross-section at height z, or None outside the blob."""
    zt = z / 0.70  # blob spans |z| < 0.70: just beyond the outer slices
    if abs(zt) >= 1:
        return None
    radius = 0.66 * np.sqrt(1 - zt**2) * (1 + 0.12 * zt)  # wider near the top
    centre = (0.05 + 0.12 * zt, -0.06 - 0.08 * zt)  # leans slightly
    t = np.linspace(0, 2 * np.pi, n, endpoint=False)
    wobble = 1 + 0.08 * np.sin(3 * t + 1.3 * zt) + 0.04 * np.cos(2 * t)
    return centre[0] + radius * wobble * np.cos(t), centre[1] + radius * wobble * np.sin(t)


def _turn(a, b, c):
    """z of the cross product (b - a) x (c - a): > 0 for a left turn."""
    return (b[0] - a[0]) * (c[1] - a[1]) - (b[1] - a[1]) * (c[0] - a[0])


def convex_hull(points):
    """Monotone chain convex hull of 2D points, counter-clockwise."""
    pts = sorted(map(tuple, points))

    def half(seq):
        out = []
        for p in seq:
            while len(out) >= 2 and _turn(out[-2], out[-1], p) <= 0:
                out.pop()
            out.append(p)
        return out

    lower, upper = half(pts), half(reversed(pts))
    return np.array(lower[:-1] + upper[:-1])


def blob_between(z0, z1):
    """Projected silhouette of the part of the blob between heights z0 < z1."""
    pts = []
    for z in np.linspace(z0, z1, 12):
        section = blob_section(z)
        if section is not None:
            pts.append(project(*section, z))
    return convex_hull(np.concatenate(pts)) if pts else None


def draw(path):
    fig = plt.figure(figsize=(1, 1), dpi=SIZE_PX)
    ax = fig.add_axes([0, 0, 1, 1])
    ax.set_xlim(-1.0, 1.0)
    ax.set_ylim(-1.0, 1.0)
    ax.set_aspect("equal")
    ax.axis("off")

    square = ([-1, 1, 1, -1], [-1, -1, 1, 1])
    bottom_up = list(zip(SLICE_HEIGHTS, SLICE_COLORS))[::-1]
    z_prev = -1.0
    for z, color in bottom_up:
        # The part of the blob under this slice, seen through it.
        hull = blob_between(z_prev, z)
        if hull is not None:
            ax.add_patch(Polygon(hull, closed=True, fc=BLOB_FILL, ec="none", alpha=0.55))
        plane = project(*square, z)
        ax.add_patch(Polygon(plane, closed=True, fc=color, ec=OUTLINE, lw=1.1, alpha=0.72, joinstyle="round"))
        section = blob_section(z)
        ax.add_patch(Polygon(project(*section, z), closed=True, fc=BLOB_FILL, ec=BLOB_EDGE, lw=1.3))
        z_prev = z
    hull = blob_between(z_prev, 1.0)
    if hull is not None:
        ax.add_patch(Polygon(hull, closed=True, fc=BLOB_FILL, ec="none", alpha=0.55))

    # The click: a point on the top (Red) slice, inside the segmented section,
    # and the mouse pointer that placed it.
    z_top = SLICE_HEIGHTS[0]
    cu, cv = blob_section(z_top)
    click = project(np.mean(cu), np.mean(cv), z_top)
    ax.add_patch(Circle(click, 0.075, fc="white", ec=OUTLINE, lw=1.2, zorder=5))
    ax.add_patch(Polygon(click + CURSOR * 0.36 + (0.05, -0.05), closed=True, fc="white", ec=OUTLINE,
                         lw=1.2, joinstyle="round", zorder=6))

    path.parent.mkdir(parents=True, exist_ok=True)
    fig.savefig(path, dpi=SIZE_PX, transparent=True)
    plt.close(fig)


def main():
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("outputs", nargs="*", type=Path, default=OUTPUTS, help="PNG files to write")
    for path in parser.parse_args().outputs:
        draw(path)
        print(f"wrote {path}")


if __name__ == "__main__":
    main()
