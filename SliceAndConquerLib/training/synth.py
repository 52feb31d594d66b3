"""The f2D data engine: training slices beyond the real ones, all made from training subjects only.

Three generators, each taking a numpy random Generator and returning (image [H, W] float32 in [0, 1],
target mask [H, W] bool, pixel spacing (row, col) in mm) at the slice's own grid; the sampler then
cuts the network's window out of it exactly as it does for a real slice.

- `synth_from_labels` (SynthSeg-style): a slab of a training label map, elastically deformed; every
  label gets a random mean intensity and texture, then blur, a bias field, gamma and noise; at times a
  thick-slice reconstruction (the slab averaged along the plane's normal, or blocks along one in-plane
  axis, i.e. a through-plane view of a thick scan). The target is one label of the map.
- `synth_lesion`: a compact irregular blob (5-50 mm) with its own texture, a partial-volume border and
  faint to strong contrast of either sign, painted into a real training slice inside the body.
- `thick_slab`: a real training slice as a thick-slice scan would show it: the volume averaged over a
  slab of 2-8 mm, either along the plane's normal (an in-plane slice of a thick scan) or along one of
  the plane's own axes (a through-plane slice: large pixels along that axis).

For f3D's training states (`loop_states`, issue 18) the engine also makes whole volumes:
`synth_volume_from_labels` (the label synthesis in 3D) and `synth_lesion_volume` (a 3D lesion painted
into a real training volume with `data.lesions.insert_lesions` and the engine's own `TRAINING_LESIONS`).

These settings are the training engine's own (they are not the validation manifest's generators).
"""
from __future__ import annotations

from dataclasses import dataclass

import cv2
import numpy as np
from scipy import ndimage

from ..data.lesions import LesionSettings, body_mask as volume_body_mask, insert_lesions

MIN_AREA = 12


@dataclass(frozen=True)
class EngineSettings:
    thick_mm: tuple = (2.0, 8.0)          # slab thickness of thick-slice reconstructions
    thick_prob: float = 0.35              # share of label-synthesised slices that are thick
    elastic_px: tuple = (0.0, 6.0)        # displacement amplitude (sd, px; at most 0.25 x the smoothness)
    elastic_smooth: tuple = (6.0, 16.0)   # its smoothness (Gaussian sigma, pixels)
    blur_px: tuple = (0.0, 1.5)
    noise: tuple = (0.0, 0.06)
    gamma_log_sd: float = 0.35
    bias: float = 0.4                     # log-amplitude of the multiplicative bias field
    lesion_mm: tuple = (5.0, 50.0)        # lesion diameter
    lesion_contrast: tuple = (0.03, 0.45)  # |intensity step| on the [0, 1] scale, either sign
    body_threshold: float = 0.05          # normalised intensity above which a pixel is body


DEFAULT = EngineSettings()


# ------------------------------------------------------------------ shared pieces
def _smooth_noise(shape, sigma, rng):
    field = ndimage.gaussian_filter(rng.standard_normal(shape).astype(np.float32), sigma)
    return field / (field.std() + 1e-6)


def _bias_field(shape, amplitude, rng):
    """A smooth multiplicative field exp(N), drawn coarse (4 per axis) and resized (2D or 3D)."""
    coarse = rng.standard_normal((4,) * len(shape)).astype(np.float32) * amplitude
    if len(shape) == 2:
        return np.exp(cv2.resize(coarse, (shape[1], shape[0]), interpolation=cv2.INTER_CUBIC))
    return np.exp(ndimage.zoom(coarse, [n / 4 for n in shape], order=1, mode="nearest", grid_mode=True))


def _elastic(labels2d_stack, rng, s: EngineSettings):
    """The same smooth random displacement applied (nearest neighbour) to every slice of a slab."""
    shape = labels2d_stack.shape[1:]
    amplitude = rng.uniform(*s.elastic_px)
    if amplitude < 0.5:
        return labels2d_stack
    sigma = rng.uniform(*s.elastic_smooth)
    amplitude = min(amplitude, 0.25 * sigma)  # displacement gradients well below 1: no folding
    dy, dx = (_smooth_noise(shape, sigma, rng) * amplitude for _ in range(2))
    yy, xx = np.mgrid[: shape[0], : shape[1]].astype(np.float32)
    map_x, map_y = (xx + dx).astype(np.float32), (yy + dy).astype(np.float32)
    return np.stack([cv2.remap(np.ascontiguousarray(lab, np.float32), map_x, map_y, cv2.INTER_NEAREST,
                               borderMode=cv2.BORDER_REPLICATE) for lab in labels2d_stack]).astype(np.int32)


def _finish(image, rng, s: EngineSettings):
    """Blur, bias field, gamma, noise, then [0, 1] by robust percentiles."""
    sigma = rng.uniform(*s.blur_px)
    if sigma > 0.3:
        image = cv2.GaussianBlur(image, (0, 0), sigma) if image.ndim == 2 else ndimage.gaussian_filter(image, sigma)
    image = image * _bias_field(image.shape, rng.uniform(0, s.bias), rng)
    low, high = np.percentile(image, [0.5, 99.5])
    image = np.clip((image - low) / max(high - low, 1e-6), 0, 1)
    image = image ** np.exp(rng.normal(0, s.gamma_log_sd))
    image = image + rng.normal(0, rng.uniform(*s.noise), image.shape)
    return np.clip(image, 0, 1).astype(np.float32)


def _slab(volume, axis, index, half):
    lo, hi = max(0, index - half), min(volume.shape[axis], index + half + 1)
    return np.moveaxis(np.take(volume, np.arange(lo, hi), axis=axis), axis, 0)


def _block_average(image, axis, block):
    """Average blocks of `block` pixels along `axis` (0 rows, 1 columns): the coarse grid of a thick
    through-plane view. Returns the coarse image."""
    n = image.shape[axis] // block * block
    if n < block:
        return image
    image = np.take(image, np.arange(n), axis=axis)
    shape = list(image.shape)
    shape[axis:axis + 1] = [n // block, block]
    return image.reshape(shape).mean(axis=axis + 1)


def _in_plane_spacing(spacing3d, axis):
    return tuple(float(v) for a, v in enumerate(spacing3d) if a != axis)


# ------------------------------------------------------------------ generators
def synth_from_labels(labels3d, spacing3d, value, axis, index, rng, s: EngineSettings = DEFAULT):
    """SynthSeg-style slice of a label map; target = label `value` (see the module docstring)."""
    thick = rng.random() < s.thick_prob
    normal_thick = thick and rng.random() < 0.5
    half = 0
    if normal_thick:
        slab_mm = rng.uniform(*s.thick_mm)
        half = max(0, int(round(slab_mm / spacing3d[axis] / 2)))
    slab = _elastic(_slab(labels3d, axis, index, half), rng, s)
    values = np.unique(slab)
    means = rng.uniform(0, 1, size=len(values)).astype(np.float32)
    spreads = rng.uniform(0, 0.08, size=len(values)).astype(np.float32)
    texture = _smooth_noise(slab.shape[1:], rng.uniform(0.5, 2.5), rng)
    lookup = np.searchsorted(values, slab)
    images = means[lookup] + spreads[lookup] * texture[None]
    image = images.mean(axis=0).astype(np.float32)
    centre = slab[index - max(0, index - half)]
    mask = (slab == value).mean(axis=0) >= 0.5 if normal_thick else centre == value
    spacing = _in_plane_spacing(spacing3d, axis)
    if thick and not normal_thick:
        image, mask, spacing = _through_plane(image, mask, spacing, rng, s)
    return _finish(image, rng, s), mask, spacing


def _through_plane(image, mask, spacing, rng, s: EngineSettings):
    along = int(rng.integers(2))
    block = max(1, int(round(rng.uniform(*s.thick_mm) / spacing[along])))
    if block < 2:
        return image, mask, spacing
    image = _block_average(image.astype(np.float32), along, block)
    mask = _block_average(mask.astype(np.float32), along, block) >= 0.5
    spacing = tuple(v * block if a == along else v for a, v in enumerate(spacing))
    return image.astype(np.float32), mask, spacing


def body_mask(image2d, threshold: float = DEFAULT.body_threshold) -> np.ndarray:
    """The largest bright connected region, holes filled: where a lesion may go."""
    body = ndimage.binary_opening(image2d > threshold, iterations=2)
    labels, count = ndimage.label(body)
    if count == 0:
        return body
    sizes = np.bincount(labels.ravel())[1:]
    return ndimage.binary_fill_holes(labels == 1 + int(np.argmax(sizes)))


def lesion_shape(radius_px, rng, size=None):
    """A compact irregular blob: a disk whose radius varies smoothly with angle, plus fine noise."""
    size = size or int(2 * radius_px * 1.6 + 7)
    yy, xx = np.mgrid[:size, :size] - (size - 1) / 2
    angle = np.arctan2(yy, xx)
    wobble = np.zeros_like(angle)
    for k in range(2, 6):
        wobble += rng.normal(0, 0.12 / k * 2) * np.cos(k * angle + rng.uniform(0, 2 * np.pi))
    stretch = rng.uniform(0.7, 1.0)
    theta = rng.uniform(0, np.pi)
    u = xx * np.cos(theta) + yy * np.sin(theta)
    v = -xx * np.sin(theta) + yy * np.cos(theta)
    distance = np.sqrt(u ** 2 + (v / stretch) ** 2)
    return distance <= radius_px * (1 + wobble)


def synth_lesion(image2d, spacing2d, rng, s: EngineSettings = DEFAULT):
    """A lesion painted into a real (normalised) slice inside its body; (image, mask, spacing), or
    None when the slice has no body large enough."""
    body = body_mask(image2d, s.body_threshold)
    diameter_mm = np.exp(rng.uniform(*np.log(s.lesion_mm)))   # log-uniform: small ones are common
    radius_px = diameter_mm / 2 / min(spacing2d)
    inner = ndimage.binary_erosion(body, iterations=max(1, int(np.ceil(radius_px * 1.3))))
    candidates = np.argwhere(inner)
    if not len(candidates):
        return None
    row, col = candidates[rng.integers(len(candidates))]
    # the blob is drawn on a square-mm grid, then resized to the slice's pixels
    blob = lesion_shape(diameter_mm / 2, rng)                 # 1 px = 1 mm
    height = max(3, int(round(blob.shape[0] / spacing2d[0])))
    width = max(3, int(round(blob.shape[1] / spacing2d[1])))
    soft = cv2.resize(blob.astype(np.float32), (width, height), interpolation=cv2.INTER_AREA)
    pv = rng.uniform(0.4, 1.5)                                 # partial-volume border width (px)
    soft = cv2.GaussianBlur(soft, (0, 0), pv)
    canvas = np.zeros(image2d.shape, np.float32)
    top, left = row - height // 2, col - width // 2
    r0, c0 = max(0, top), max(0, left)
    r1, c1 = min(image2d.shape[0], top + height), min(image2d.shape[1], left + width)
    canvas[r0:r1, c0:c1] = soft[r0 - top:r1 - top, c0 - left:c1 - left]
    canvas *= body
    mask = canvas >= 0.5
    if mask.sum() < MIN_AREA:
        return None
    contrast = rng.uniform(*s.lesion_contrast) * rng.choice([-1.0, 1.0])
    texture = _smooth_noise(image2d.shape, rng.uniform(0.5, 2.0), rng) * rng.uniform(0, 0.4)
    ring = rng.random() < 0.2  # rim-enhancing lesions: a brighter border than core
    weight = canvas * (1 + texture)
    if ring:
        weight = weight * (1 - 0.7 * ndimage.binary_erosion(mask, iterations=max(1, int(radius_px / 3))))
    image = np.clip(image2d + contrast * weight, 0, 1).astype(np.float32)
    return image, mask, tuple(float(v) for v in spacing2d)


def thick_slab(image3d, labels3d, value, spacing3d, axis, index, rng, s: EngineSettings = DEFAULT):
    """A real slice of a thick reconstruction (see the module docstring)."""
    thickness = rng.uniform(*s.thick_mm)
    spacing = _in_plane_spacing(spacing3d, axis)
    if rng.random() < 0.5:  # along the normal: an in-plane slice of a thick scan
        half = max(1, int(round(thickness / spacing3d[axis] / 2)))
        image = _slab(image3d, axis, index, half).mean(axis=0).astype(np.float32)
        mask = (_slab(labels3d, axis, index, half) == value).mean(axis=0) >= 0.5
        return image, mask, spacing
    image = np.take(image3d, index, axis=axis).astype(np.float32)
    mask = np.take(labels3d, index, axis=axis) == value
    return _through_plane(image, mask, spacing, rng, s)


# ------------------------------------------------------------------ whole volumes (f3D's loop states)
# Lesions of the engine, on the [0, 1] scale of a normalised volume; not the validation settings.
TRAINING_LESIONS = LesionSettings(diameter_mm=(5.0, 50.0), irregularity=(0.05, 0.4), contrast=(0.7, 10.0),
                                  min_contrast=0.03, darker=0.5, texture=0.3, border_mm=(0.4, 2.5),
                                  touching=0.4)


def _elastic_volume(labels3d, rng, s: EngineSettings):
    """A smooth random displacement (nearest neighbour) of a label volume; half the slices' amplitude
    in voxels, since a volume's voxels are coarser than a slice's pixels."""
    amplitude = rng.uniform(*s.elastic_px) / 2
    if amplitude < 0.5:
        return labels3d
    shape = labels3d.shape
    coords = np.indices(shape, dtype=np.float32)
    for axis in range(3):  # 5 nodes per axis: displacement gradients well below 1, no folding
        coarse = rng.standard_normal((5, 5, 5)).astype(np.float32) * amplitude
        coords[axis] += ndimage.zoom(coarse, [n / 5 for n in shape], order=1, mode="nearest", grid_mode=True)
    return ndimage.map_coordinates(labels3d, coords, order=0, mode="nearest")


def synth_volume_from_labels(labels3d, value, rng, s: EngineSettings = DEFAULT):
    """(image [0, 1] float32, target bool): a SynthSeg-style volume of a label map, elastically deformed,
    each label one random intensity and a faint texture, then blur, bias field, gamma and noise. The
    target is label `value` of the deformed map (it may vanish: the caller checks)."""
    labels = _elastic_volume(np.asarray(labels3d), rng, s)
    values, lookup = np.unique(labels, return_inverse=True)
    lookup = lookup.reshape(labels.shape)
    means = rng.uniform(0, 1, size=len(values)).astype(np.float32)
    spreads = rng.uniform(0, 0.08, size=len(values)).astype(np.float32)
    image = means[lookup] + spreads[lookup] * _smooth_noise(labels.shape, rng.uniform(0.5, 2.5), rng)
    return _finish(image.astype(np.float32), rng, s), labels == value


def synth_lesion_volume(image3d, host, spacing3d, rng, s: EngineSettings = DEFAULT, tries: int = 12):
    """(image, lesion mask) with one lesion of `TRAINING_LESIONS` in the region `host` of a real
    normalised volume, inside its body; None when none fits."""
    body = volume_body_mask(image3d, s.body_threshold)
    image, labels, made = insert_lesions(image3d, host.astype(np.uint8), body, spacing3d, 1, TRAINING_LESIONS,
                                         seed=int(rng.integers(2 ** 31)), max_tries=tries)
    if not made:
        return None
    return np.clip(image, 0, 1).astype(np.float32), labels == 1
