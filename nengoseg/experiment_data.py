"""The train / validation / test arrays an experiment config describes.

Every dataset ends up as :class:`Part` objects: inputs ``x``, targets ``y`` and,
for each example, the group it belongs to (the subject for MRI volumes, the image
for EM and fundus tiles and photos). Splits are always made over those groups, never over
slices, so no subject leaks from training into testing.
"""

from dataclasses import dataclass
from pathlib import Path

import numpy as np

from nengoseg import data as nsdata
from nengoseg.errors import ConfigError, DataError

SAMPLE_PREFIX = "sample:"


@dataclass
class Part:
    x: np.ndarray
    y: np.ndarray
    groups: np.ndarray  # subject / image of each example
    slice_index: np.ndarray  # position along the slicing axis (0 where not sliced)
    # where scores count, (N, H, W) bool: the field of view of fundus images; None: everywhere
    roi: np.ndarray = None
    # per group, how its tiles make an image: {group: {"shape": (H, W), "sigma": s}}
    # (denoising test images, scored whole); None: every example is scored on its own
    layout: dict = None

    def __len__(self):
        return len(self.x)

    def select(self, groups):
        return self.take(np.isin(self.groups, list(groups)))

    def take(self, rows):
        """The examples at ``rows`` (indices or a boolean mask)."""
        roi = None if self.roi is None else self.roi[rows]
        return Part(self.x[rows], self.y[rows], self.groups[rows], self.slice_index[rows], roi,
                    self.layout)


@dataclass
class ExperimentData:
    task: str  # "segmentation", "boxes" or "denoising"
    train: Part
    val: Part
    test: Part
    split: dict  # part name -> list of groups

    @property
    def input_shape(self):
        return tuple(self.train.x.shape[1:])

    @property
    def n_outputs(self):
        return self.train.y.shape[-1]


def resolve_root(root):
    """A folder from the config, or the shipped sample for ``sample:NAME``."""
    if root is None:
        return None
    if root.startswith(SAMPLE_PREFIX):
        return nsdata.sample_path(root[len(SAMPLE_PREFIX):])
    path = Path(root).expanduser()
    if not path.exists():
        raise DataError(f"data folder {path} does not exist (data.root in the config)")
    return path


def load_experiment_data(cfg):
    """Load and split the data of a resolved config."""
    data_cfg = cfg["data"]
    if data_cfg["dataset"] == "denoising":
        return _denoising(data_cfg, cfg["seed"])
    loader = _LOADERS[data_cfg["dataset"]]
    task, everything = loader(data_cfg)
    groups = sorted(set(everything.groups.tolist()))
    if data_cfg["max_subjects"] is not None:
        groups = groups[: data_cfg["max_subjects"]]
    seed = cfg["seed"]
    if data_cfg["split"] == "kfold":
        split = nsdata.kfold_subjects(
            groups, data_cfg["n_folds"], data_cfg["fold"], data_cfg["val_fraction"], seed
        )
    else:
        split = nsdata.split_subjects(
            groups, data_cfg["test_fraction"], data_cfg["val_fraction"], seed
        )
    parts = {name: everything.select(split[name]) for name in ("train", "val", "test")}
    if len(parts["train"]) == 0 or len(parts["test"]) == 0:
        raise ConfigError(
            f"data: the split leaves no training or no test examples ({len(groups)} groups); "
            "use more subjects or other data.test_fraction / data.val_fraction"
        )
    return ExperimentData(task, parts["train"], parts["val"], parts["test"], split)


def _hippocampus(data_cfg):
    root = resolve_root(data_cfg["root"]) if data_cfg["images_dir"] is None else None
    volumes = nsdata.load_hippocampus(
        root=root, images_dir=data_cfg["images_dir"], labels_dir=data_cfg["labels_dir"]
    )
    if data_cfg["max_subjects"] is not None:
        volumes = volumes[: data_cfg["max_subjects"]]
    slices = nsdata.volumes_to_slices(
        volumes,
        axis=data_cfg["slice_axis"],
        size=tuple(data_cfg["size"]),
        normalise=data_cfg["normalise"],
        task=data_cfg["task"],
    )
    y = slices.y
    if data_cfg["task"] == "multiclass":
        y = np.eye(3, dtype=np.uint8)[y[..., 0]]  # one-hot: background, head, body
    return "segmentation", Part(slices.x, y, slices.subjects, slices.slice_index)


def _isbi2012(data_cfg):
    x, y, names = nsdata.load_isbi2012(resolve_root(data_cfg["root"]), data_cfg["foreground"])
    if data_cfg["normalise"] == "zero_mean":
        x = np.stack([nsdata.normalise_volume(img, "zero_mean") for img in x])
    h, w = data_cfg["size"]
    if x.shape[1] % h or x.shape[2] % w:
        raise ConfigError(
            f"data.size {data_cfg['size']} must tile the {x.shape[1]}x{x.shape[2]} ISBI images "
            "(use divisors such as [64, 64] or [128, 128])"
        )
    return "segmentation", _tiled_part(x, y, names, h, w)


def _drive(data_cfg):
    """DRIVE fundus images in gray, cut into ``data.size`` tiles; one group per image.

    DRIVE images (584 x 565) are padded with zeros at the bottom and right up to a
    multiple of the tile size (565 and 584 have few divisors) instead of being refused;
    ``data.normalise`` is applied to each image before the padding. Tiles run row by row
    (``slice_index`` = tile number). Label pixels outside the field of view are set to 0
    (the training half has 200 vessel pixels just outside its masks). The field of view
    travels as the part's ``roi``, so every score counts only pixels inside it (as the
    DRIVE literature and the Spiking-UNet paper score); the padding lies outside it.
    """
    drive = nsdata.load_drive(resolve_root(data_cfg["root"]), gray=True)
    x, y = drive.x, drive.y * drive.fov
    if data_cfg["normalise"] == "zero_mean":
        x = np.stack([nsdata.normalise_volume(img, "zero_mean") for img in x])
    h, w = data_cfg["size"]
    pad = ((0, 0), (0, -x.shape[1] % h), (0, -x.shape[2] % w), (0, 0))
    x, y, fov = np.pad(x, pad), np.pad(y, pad), np.pad(drive.fov, pad)
    return "segmentation", _tiled_part(x, y, drive.names, h, w, roi=fov[..., 0] > 0)


def _tiled_part(x, y, names, h, w, roi=None):
    """Images cut into (h, w) tiles, row by row: groups = image name, slice_index = tile;
    ``roi`` (N, H, W), where scores count, is cut the same way."""
    tiles_x, tiles_y, tiles_roi, groups, index = [], [], [], [], []
    for k, (img, lab, name) in enumerate(zip(x, y, names)):
        tiles_x += _tiles(img, h, w)
        tiles_y += _tiles(lab, h, w)
        if roi is not None:
            tiles_roi += _tiles(roi[k], h, w)
        n = len(tiles_x) - len(groups)
        groups += [name] * n
        index += list(range(n))
    return Part(np.stack(tiles_x), np.stack(tiles_y), np.array(groups), np.array(index),
                None if roi is None else np.stack(tiles_roi))


def _tiles(image, h, w):
    return [
        image[r : r + h, c : c + w]
        for r in range(0, image.shape[0], h)
        for c in range(0, image.shape[1], w)
    ]


def _airplanes(data_cfg):
    x, boxes, names = nsdata.load_airplanes(
        resolve_root(data_cfg["root"]), size=tuple(data_cfg["size"])
    )
    if data_cfg["normalise"] == "zero_mean":
        x = x * 2.0 - 1.0
    return "boxes", Part(x, boxes, np.array(names), np.zeros(len(names), dtype=int))


def _denoising(data_cfg, seed):
    """Gaussian denoising: training and validation patches from the clean images in
    ``data.root`` (Train400), each with noise of a random sigma in ``data.sigma_range``;
    the test part is ``data.test_set`` under ``data.test_root`` at each of
    ``data.test_sigmas``, every image whole (cut into ``data.size`` tiles, padded by
    reflection, its layout in ``Part.layout``). Inputs are noisy images, targets the
    noise; the validation images are split off by image, never by patch.
    """
    mode = "RGB" if data_cfg["channels"] == 3 else "L"
    test_set = data_cfg["test_set"]
    wanted = nsdata.denoising.SET_MODES[test_set]
    if wanted != mode:
        raise ConfigError(
            f"data.test_set {test_set} is {'colour' if wanted == 'RGB' else 'gray'} but "
            f"data.channels is {data_cfg['channels']}; use data.channels: "
            f"{3 if wanted == 'RGB' else 1} (and colour training images in data.root for "
            f"CBSD68: Train400 is gray)")
    if data_cfg["test_root"] is None:
        raise ConfigError("data.test_root is missing; give the folder that holds "
                          f"{test_set}/ (e.g. ../shared/data/denoising_testsets)")
    images, names = nsdata.denoising.load_clean(resolve_root(data_cfg["root"]), mode)
    if data_cfg["max_subjects"] is not None:
        images, names = images[: data_cfg["max_subjects"]], names[: data_cfg["max_subjects"]]
    x, y, index, _ = nsdata.denoising.training_patches(
        images, data_cfg["size"], data_cfg["patches_per_image"], data_cfg["sigma_range"], seed)
    groups = np.array(names)[index]
    split = nsdata.split_subjects(names, 0.0, data_cfg["val_fraction"], seed)
    everything = Part(x, y, groups, np.zeros(len(x), int))
    test = _denoising_test(data_cfg, Path(resolve_root(data_cfg["test_root"])) / test_set,
                           mode, seed)
    split["test"] = sorted(test.layout)
    return ExperimentData("denoising", everything.select(split["train"]),
                          everything.select(split["val"]), test, split)


def _denoising_test(data_cfg, folder, mode, seed):
    """Every test image at every test sigma, tiled; group ``NAME@sigma``."""
    images, names = nsdata.denoising.load_clean(folder, mode)
    limit = data_cfg["max_test_images"]
    images, names = images[:limit], names[:limit]
    xs, ys, rois, groups, index, layout = [], [], [], [], [], {}
    for k, sigma in enumerate(data_cfg["test_sigmas"]):
        for i, (image, name) in enumerate(zip(images, names)):
            noisy, noise, inside = nsdata.denoising.noisy_tiles(
                image, sigma, data_cfg["size"], seed=seed * 100_003 + k * 1009 + i)
            group = f"{name}@{sigma}"
            layout[group] = {"shape": image.shape[:2], "sigma": sigma}
            xs.append(noisy)
            ys.append(noise)
            rois.append(inside)
            groups += [group] * len(noisy)
            index += list(range(len(noisy)))
    return Part(np.concatenate(xs), np.concatenate(ys), np.array(groups), np.array(index),
                np.concatenate(rois), layout)


_LOADERS = {
    "hippocampus": _hippocampus,
    "isbi2012": _isbi2012,
    "drive": _drive,
    "airplanes": _airplanes,
}
