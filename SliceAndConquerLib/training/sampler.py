"""2D training samples from a manifest: a slice of a target on any of the three axes, cut out with the
same window rule as the app, resampled to the network size and augmented."""
from __future__ import annotations

import json
import zipfile
from dataclasses import dataclass
from pathlib import Path

import cv2
import numpy as np
from scipy import ndimage

from ..clicks import next_click
from ..data.manifest import read_manifest, source_of
from ..errors import InputError
from ..intensity import normalize
from ..models.f2d import INPUT_SIZE
from ..models.window import Window, first_window, window_for

MIN_AREA = 12  # pixels: smaller cross-sections are not worth a click

# How often each source is drawn (per target, relative) and how much its loss counts. Atlas regions
# (macaque NeuroMaps) have borders the image cannot show: drawn and weighted less.
SOURCE_WEIGHTS = {"inia19": (0.4, 0.3), "nuclei": (0.5, 1.0), "mni152": (3.0, 1.0)}


@dataclass
class Target:
    image: int
    label: int
    value: int
    weight: float
    slices: tuple  # per axis: indices of slices with at least MIN_AREA target pixels


class TrainingVolumes:
    """Every training target with its normalised image and label volume, loaded once.

    `source` is a manifest (JSON) or a training pack from `write_pack` (.npz, `snc data pack`): the same
    arrays in one file, for a machine without the image readers (a rented GPU) or a faster start."""

    def __init__(self, source, oversample: dict | None = None):
        """`oversample`: source name (a case name's first part, e.g. "ts-dicom") -> factor on how often
        its targets are drawn."""
        if Path(source).suffix == ".npz":
            raw_images, spacings, labels, cases = _read_pack(source)
        else:
            raw_images, spacings, labels, cases = _read_manifest_volumes(source)
        oversample = oversample or {}
        unknown = set(oversample) - {source_of(name) for name, *_ in cases}
        if unknown:  # before any volume is normalised: a typo should not cost the loading time
            raise InputError(f"{source}: no targets from {', '.join(sorted(unknown))} to oversample")
        self.spacings, self.labels = spacings, labels
        self.images = [normalize(image) for image in raw_images]
        self.targets: list[Target] = []
        self.sources: list[str] = []
        draw = []
        for name, image_id, label_id, value in cases:
            label = labels[label_id]
            if label.shape != self.images[image_id].shape:
                continue
            target = label == value
            slices = tuple(np.flatnonzero(target.sum(axis=tuple(b for b in range(3) if b != a)) >= MIN_AREA)
                           for a in range(3))
            if not any(len(s) for s in slices):
                continue
            source = source_of(name)
            frequency, weight = SOURCE_WEIGHTS.get(source, (1.0, 1.0))
            self.targets.append(Target(image_id, label_id, value, weight, slices))
            self.sources.append(source)
            draw.append(frequency * oversample.get(source, 1.0))
        if not self.targets:
            raise ValueError(f"{source}: no usable training targets")
        self.draw = np.asarray(draw) / np.sum(draw)

    def pick(self, rng) -> Target:
        return self.targets[rng.choice(len(self.targets), p=self.draw)]


def write_pack(manifest, path) -> Path:
    """The training pack of a manifest: raw arrays in the smallest exact dtype, compressed, one file."""
    images, spacings, labels, cases = _read_manifest_volumes(manifest)
    arrays = {f"image{i}": _compact(a) for i, a in enumerate(images)}
    arrays.update({f"label{i}": _compact(a) for i, a in enumerate(labels)})
    arrays["spacings"] = np.asarray(spacings, dtype=np.float64)
    arrays["cases"] = np.asarray(json.dumps(cases))
    path = Path(path)
    np.savez_compressed(path, **arrays)
    return path


def _read_manifest_volumes(manifest):
    from ..imageio import read_volume  # SimpleITK: not needed when training from a pack

    images, spacings, labels, cases = [], [], [], []
    image_ids, label_ids = {}, {}
    for case in read_manifest(manifest):
        if case.image not in image_ids:
            volume = read_volume(case.image)
            image_ids[case.image] = len(images)
            images.append(volume.array)
            spacings.append(volume.spacing)
        if case.label not in label_ids:
            label_ids[case.label] = len(labels)
            labels.append(read_volume(case.label, dtype=np.int32).array)
        cases.append((case.name, image_ids[case.image], label_ids[case.label], case.value))
    return images, spacings, labels, cases


def _read_pack(path):
    try:
        with np.load(path) as pack:
            cases = [tuple(c) for c in json.loads(str(pack["cases"]))]
            spacings = [tuple(float(v) for v in s) for s in pack["spacings"]]
            images = [pack[f"image{i}"].astype(np.float32) for i in range(len(spacings))]
            count = 1 + max(c[2] for c in cases)
            labels = [pack[f"label{i}"].astype(np.int32) for i in range(count)]
    except FileNotFoundError:
        raise InputError(f"{path}: training pack not found") from None
    except (KeyError, ValueError, OSError, zipfile.BadZipFile) as exc:
        raise InputError(f"{path}: not a training pack ({type(exc).__name__}: {exc})") from None
    return images, spacings, labels, cases


def _compact(array: np.ndarray) -> np.ndarray:
    """The smallest integer dtype that holds the values exactly, else the array as it is."""
    if np.issubdtype(array.dtype, np.floating) and not np.array_equal(array, np.round(array)):
        return array
    for dtype in (np.uint8, np.int8, np.uint16, np.int16, np.int32):
        info = np.iinfo(dtype)
        if array.min() >= info.min and array.max() <= info.max:
            return array.astype(dtype)
    return array


# The data engine's mix (`snc train f2d --engine`): shares of the generators in training/synth.py
# beside real slices ("real") and the random blobs below ("blobs"). Real images keep most of it:
# real + lesions painted into real slices + thick reconstructions of real volumes = 0.72.
ENGINE_MIX = {"real": 0.5, "labels": 0.2, "lesion": 0.12, "thick": 0.1, "blobs": 0.08}
# Modalities with a body to paint lesions into (not microscopy).
LESION_SOURCES_EXCLUDED = ("nuclei",)


def parse_mix(text: str) -> dict:
    """"real=0.5,labels=0.2,..." -> normalised shares (unknown names are an error)."""
    mix = {}
    for part in text.split(","):
        name, _, share = part.partition("=")
        name = name.strip()
        if name not in ENGINE_MIX:
            raise InputError(f"--mix: unknown part {name!r} (known: {', '.join(ENGINE_MIX)})")
        try:
            mix[name] = float(share)
        except ValueError:
            raise InputError(f"--mix: {part!r} is not NAME=SHARE") from None
    total = sum(mix.values())
    if total <= 0 or min(mix.values()) < 0:
        raise InputError(f"--mix {text!r}: shares must be >= 0 and not all 0")
    return {k: v / total for k, v in mix.items()}


class SliceSampler:
    def __init__(self, manifest, seed: int = 0, synthetic_fraction: float = 0.15, volumes=None,
                 mix: dict | None = None):
        """`mix`: shares of the sources (ENGINE_MIX names); None: real slices and
        `synthetic_fraction` random blobs, as before the data engine."""
        self.rng = np.random.default_rng(seed)
        self.volumes = volumes or TrainingVolumes(manifest)
        self.targets = self.volumes.targets
        self.mix = dict(mix) if mix else {"real": 1 - synthetic_fraction, "blobs": synthetic_fraction}
        self.synthetic_fraction = 1 - self.mix.get("real", 0.0)
        self._names = list(self.mix)
        self._shares = np.asarray([self.mix[n] for n in self._names]) / sum(self.mix.values())
        self._sources = {"real": self._real, "blobs": self._synthetic, "labels": self._from_labels,
                         "lesion": self._lesion, "thick": self._thick}

    def _pick_slice(self, number=None):
        """(target number, target, axis, slice index) of a target with enough area there."""
        v = self.volumes
        number = int(self.rng.choice(len(v.targets), p=v.draw)) if number is None else number
        target = v.targets[number]
        axis = int(self.rng.choice([a for a in range(3) if len(target.slices[a])]))
        index = int(self.rng.choice(target.slices[axis]))
        return number, target, axis, index

    def _from_labels(self):
        """SynthSeg-style: any training target, its label map's other labels as the scene."""
        from .synth import synth_from_labels

        v = self.volumes
        _, target, axis, index = self._pick_slice(int(self.rng.integers(len(v.targets))))
        image, mask, spacing = synth_from_labels(v.labels[target.label], v.spacings[target.image],
                                                 target.value, axis, index, self.rng)
        return image, mask, spacing, 1.0

    def _lesion(self):
        from .synth import synth_lesion

        v = self.volumes
        for _ in range(10):
            number, target, axis, index = self._pick_slice()
            if v.sources[number] in LESION_SOURCES_EXCLUDED:
                continue
            spacing = tuple(s for a, s in enumerate(v.spacings[target.image]) if a != axis)
            made = synth_lesion(np.take(v.images[target.image], index, axis=axis), spacing, self.rng)
            if made is not None:
                return made + (1.0,)
        return self._real()

    def _thick(self):
        from .synth import thick_slab

        v = self.volumes
        _, target, axis, index = self._pick_slice()
        image, mask, spacing = thick_slab(v.images[target.image], v.labels[target.label], target.value,
                                          v.spacings[target.image], axis, index, self.rng)
        return image, mask, spacing, target.weight

    def _real(self):
        v = self.volumes
        target = v.pick(self.rng)
        axis = int(self.rng.choice([a for a in range(3) if len(target.slices[a])]))
        index = int(self.rng.choice(target.slices[axis]))
        image = np.take(v.images[target.image], index, axis=axis)
        mask = np.take(v.labels[target.label], index, axis=axis) == target.value
        spacing = tuple(s for a, s in enumerate(v.spacings[target.image]) if a != axis)
        return image, mask, spacing, target.weight

    def _synthetic(self):
        """Random smooth blobs on a textured background with a bias field: shapes any click model meets."""
        size = 128
        rng = self.rng
        field = ndimage.gaussian_filter(rng.normal(size=(size, size)), rng.uniform(4, 14))
        mask = field > np.quantile(field, rng.uniform(0.75, 0.95))
        labels, count = ndimage.label(mask)
        mask = labels == rng.integers(1, count + 1)
        texture = ndimage.gaussian_filter(rng.normal(size=(size, size)), rng.uniform(0.5, 3))
        bias = ndimage.gaussian_filter(rng.normal(size=(size, size)), 30) * 10
        contrast = rng.uniform(0.15, 0.6) * rng.choice([-1, 1])
        image = 0.5 + contrast * mask + 0.08 * texture / (texture.std() + 1e-6) + 0.2 * bias
        return np.clip(image, 0, 1).astype(np.float32), mask, (1.0, 1.0), 1.0

    def sample(self):
        """(image [S, S] float32, mask [S, S] bool, loss weight) at network resolution."""
        while True:
            source = self._sources[self._names[self.rng.choice(len(self._names), p=self._shares)]]
            image, mask, spacing, weight = source()
            if mask.sum() < MIN_AREA:
                continue
            window = self._window(mask, spacing)
            crop_image = window.crop(image, INPUT_SIZE)
            crop_mask = window.crop(mask.astype(np.float32), INPUT_SIZE) > 0.5
            if crop_mask.sum() >= MIN_AREA:
                return self._augment(crop_image, crop_mask) + (weight,)

    def _window(self, mask, spacing) -> Window:
        rng = self.rng
        # Anisotropic rescaling: stretch one in-plane axis by pretending its pixels are larger.
        spacing = tuple(s * (rng.uniform(0.7, 1.4) if rng.random() < 0.3 else 1.0) for s in spacing)
        if rng.random() < 0.35:  # the first-click window, around an interior point with jitter
            click = next_click(np.zeros_like(mask), mask)
            jitter = rng.integers(-3, 4, size=2)
            return first_window(click.row + jitter[0], click.col + jitter[1], mask.shape, spacing)
        window = window_for(mask, [], spacing)  # a later window: around a mask close to the target
        shift = rng.uniform(-0.1, 0.1, size=2) * np.asarray(window.size_px)
        return Window(tuple(np.asarray(window.centre) + shift), window.side_mm * rng.uniform(0.8, 1.5), spacing)

    def _augment(self, image, mask):
        rng = self.rng
        k = int(rng.integers(4))
        image, mask = np.rot90(image, k), np.rot90(mask, k)
        if rng.random() < 0.5:
            image, mask = image[:, ::-1], mask[:, ::-1]
        image = np.clip(image, 0, 1) ** rng.uniform(0.7, 1.5)
        image = (image - 0.5) * rng.uniform(0.7, 1.3) + 0.5 + rng.uniform(-0.1, 0.1)
        if rng.random() < 0.25:
            image = cv2.GaussianBlur(np.ascontiguousarray(image, np.float32), (0, 0), rng.uniform(0.5, 1.5))
        image = image + rng.normal(0, rng.uniform(0, 0.05), image.shape)
        return np.ascontiguousarray(image, np.float32), np.ascontiguousarray(mask)
