"""Fuzzing the data loaders: any damaged or unexpected file gives a one-line DataError.

Property-based (hypothesis): tiny valid files (a 6x5x4 NIfTI pair, 6x5 PNGs, a
16x12 JPEG with its MATLAB box) are made in memory, damaged (truncated, bit flips,
overwritten or inserted bytes, replaced by garbage or by another format, wrong
dtypes and shapes, NaN/inf, label values outside the set, headers claiming huge
sizes), written to ``tmp_path`` and loaded. Each load must either succeed with
data that passes the loader's own checks, or raise a
:class:`~nengoseg.errors.DataError` whose message is one line naming the damaged
file; never another exception, and nothing may be written. Where the outcome is
clear from the input (shapes, dtypes, values) the test also says which one.

``NENGOSEG_FUZZ_EXAMPLES`` scales the number of examples (default 300 per test);
``NENGOSEG_FUZZ_RANDOM=1`` draws new examples on every run instead of a fixed set.
"""

import gzip
import io
import struct
import tracemalloc
import zlib

import nibabel as nib
import numpy as np
import pytest
import scipy.io
from hypothesis import HealthCheck, assume, event, example, given
from hypothesis import strategies as st
from PIL import Image

from nengoseg.data import load_airplanes, load_denoising, load_hippocampus, load_isbi2012
from nengoseg.data.imagefile import MAX_PIXELS
from nengoseg.data.volumes import MAX_VOXELS
from fuzzing import N_EXAMPLES, corrupt, outcome
from fuzzing import fuzz as shared_fuzz
from nengoseg.errors import DataError, NengosegError

def fuzz(n=N_EXAMPLES):
    return shared_fuzz(n, suppress=[HealthCheck.data_too_large])


def corruptions(hot=None):
    """Damage to a byte string, as data: ``(kind, ...)`` applied by `corrupt`.

    ``hot``: the first bytes (a header) get half of the positions.
    """
    position = st.floats(0, 1, exclude_max=True)
    if hot is not None:
        position = st.one_of(position, st.integers(0, hot - 1))
    return st.one_of(
        st.tuples(st.just("truncate"), st.floats(0, 1, exclude_max=True)),
        st.tuples(st.just("flip"), st.lists(st.tuples(position, st.integers(0, 7)),
                                            min_size=1, max_size=8)),
        st.tuples(st.just("overwrite"), position, st.binary(min_size=1, max_size=16)),
        st.tuples(st.just("insert"), position, st.binary(min_size=1, max_size=64)),
        st.tuples(st.just("replace"), st.binary(max_size=600)),
        st.tuples(st.just("empty")),
    )


def check_error(err, *paths):
    """The error is a one-line DataError naming the first of ``paths``."""
    message = str(err)
    assert isinstance(err, DataError), f"{type(err).__name__}: {message}"
    assert "\n" not in message, message
    assert str(paths[0]) in message, message
    return message


def load_or_error(load, folder, folder_state):
    """``load()``'s result, or the NengosegError it raised; check nothing was written."""
    return outcome(load, folder, folder_state)


# ---------------------------------------------------------------- NIfTI volumes

SHAPE = (6, 5, 4)
IMAGE = np.linspace(0, 1000, np.prod(SHAPE), dtype=np.float32).reshape(SHAPE)
LABEL = (np.arange(np.prod(SHAPE)) % 3).astype(np.uint8).reshape(SHAPE)
NIFTI_HEADER = 352  # bytes before the voxels of a NIfTI-1 file without extensions


def nifti_bytes(array, affine=None):
    affine = np.eye(4) if affine is None else affine
    return nib.Nifti1Image(array, affine, dtype=array.dtype).to_bytes()


def msd_folder(root, image_bytes, label_bytes, suffix=".nii.gz"):
    """``root/imagesTr/s_001<suffix>`` and ``root/labelsTr/s_001<suffix>`` with these bytes."""
    paths = []
    for folder, data in (("imagesTr", image_bytes), ("labelsTr", label_bytes)):
        (root / folder).mkdir(parents=True, exist_ok=True)
        for old in (root / folder).iterdir():
            old.unlink()
        path = root / folder / f"s_001{suffix}"
        path.write_bytes(data)
        paths.append(path)
    return paths


def check_volume(volumes, image=None, label=None):
    (volume,) = volumes
    assert volume.image.dtype == np.float32 and volume.image.ndim == 3
    assert np.all(np.isfinite(volume.image))
    assert volume.label.dtype == np.uint8 and volume.label.shape == volume.image.shape
    assert set(np.unique(volume.label)) <= {0, 1, 2}
    assert np.all(np.isfinite(volume.affine))
    if image is not None:
        np.testing.assert_array_equal(volume.image, image.astype(np.float32))
    if label is not None:
        np.testing.assert_array_equal(volume.label, label.astype(np.uint8))


@fuzz()
@given(
    which=st.sampled_from(["image", "label"]),
    encoding=st.sampled_from(["nii", "gzip the damaged file", "damage the gzip file"]),
    damage=st.data(),
)
def test_damaged_nifti_is_a_data_error(tmp_path, folder_state, which, encoding, damage):
    files = {"image": nifti_bytes(IMAGE), "label": nifti_bytes(LABEL)}
    if encoding == "damage the gzip file":
        files = {k: gzip.compress(v, mtime=0) for k, v in files.items()}
        files[which] = corrupt(files[which], damage.draw(corruptions(hot=64)))
    else:
        files[which] = corrupt(files[which], damage.draw(corruptions(hot=NIFTI_HEADER)))
        if encoding == "gzip the damaged file":
            files = {k: gzip.compress(v, mtime=0) for k, v in files.items()}
    suffix = ".nii" if encoding == "nii" else ".nii.gz"
    image_path, label_path = msd_folder(tmp_path, files["image"], files["label"], suffix)
    result = load_or_error(lambda: load_hippocampus(tmp_path), tmp_path, folder_state)
    if isinstance(result, NengosegError):
        check_error(result, image_path if which == "image" else label_path)
    else:
        check_volume(result)


# what a NIfTI array may hold, and whether the loader must accept it
REAL_DTYPES = [np.uint8, np.int8, np.int16, np.uint16, np.int32, np.int64, np.float32,
               np.float64]
OTHER_DTYPES = [np.complex64, np.complex128]


@st.composite
def nifti_arrays(draw, low, high, specials):
    """A random array: shape (3D mostly), dtype, values in [low, high] from a seeded
    generator, with up to 4 voxels set to ``specials`` (NaN, inf, out-of-set labels)."""
    ndim = draw(st.sampled_from([3] * 9 + [1, 2, 4, 5]))
    shape = tuple(draw(st.lists(st.integers(1, 4), min_size=ndim, max_size=ndim)))
    if ndim == 3 and draw(st.booleans()):
        shape = SHAPE
    dtype = np.dtype(draw(st.sampled_from(REAL_DTYPES * 3 + OTHER_DTYPES)))
    rng = np.random.default_rng(draw(st.integers(0, 2**32 - 1)))
    array = rng.integers(low, high + 1, shape).astype(np.float64)
    if draw(st.integers(0, 3)) == 0 and dtype.kind in "fc":
        array += rng.random(shape) * (array != 0)  # fractions
    n_specials = draw(st.sampled_from([0, 0, 0, 1, 2, 4]))
    for position, value in draw(st.lists(st.tuples(st.floats(0, 1, exclude_max=True), specials),
                                         min_size=n_specials, max_size=n_specials)):
        array.flat[int(position * array.size)] = value
    if dtype.kind in "iu":
        info = np.iinfo(dtype)
        array = np.clip(np.nan_to_num(np.round(array)), info.min, info.max)
    with np.errstate(all="ignore"):
        return array.astype(dtype)


def image_problem(array):
    if array.ndim != 3:
        return "expected a 3D volume"
    if array.dtype.kind not in "iuf":
        return "expected real numbers"
    with np.errstate(all="ignore"):
        if not np.all(np.isfinite(array.astype(np.float32))):
            return "NaN or infinite"
    return None


def label_problem(label, image, affine_shift):
    if label.shape != image.shape:
        return "label shape"
    if affine_shift > 1e-3:
        return "affine"
    if label.dtype.kind not in "iuf":
        return "expected real numbers"
    if not np.all(np.isfinite(label)) or not np.array_equal(label, np.round(label)):
        return "non-integral"
    if not set(np.unique(label).tolist()) <= {0, 1, 2}:
        return "are not allowed"
    return None


@fuzz()
@given(
    image=nifti_arrays(-1000, 1000, st.sampled_from([np.nan, np.inf, -np.inf, 3e38, 1e39])),
    label=nifti_arrays(0, 2, st.sampled_from([0, 1, 2, -1, 3, 255, 0.5, 2.5, 1e30, np.nan, np.inf])),
    same_shape=st.sampled_from([True, True, True, False]),
    affine_shift=st.sampled_from([0.0, 0.0, 1e-4, 0.5]),
    gzipped=st.booleans(),
)
@example(image=IMAGE, label=np.where(LABEL == 2, 1.5, LABEL).astype(np.float32), same_shape=True,
         affine_shift=0.0, gzipped=True)  # non-integral
@example(image=IMAGE, label=np.where(LABEL == 2, np.nan, LABEL), same_shape=True,
         affine_shift=0.0, gzipped=False)  # NaN label
@example(image=IMAGE.astype(np.int16), label=LABEL.astype(np.float64), same_shape=True,
         affine_shift=1e-4, gzipped=True)  # loads: float label, affine within tolerance
def test_wrong_shapes_dtypes_and_values_are_named(
    tmp_path, folder_state, image, label, same_shape, affine_shift, gzipped
):
    if same_shape:
        label = np.resize(label, image.shape)
    affine = np.eye(4)
    affine[0, 3] = affine_shift
    image_path, label_path = msd_folder(
        tmp_path, nifti_bytes(image), nifti_bytes(label, affine), ".nii.gz" if gzipped else ".nii"
    )
    result = load_or_error(lambda: load_hippocampus(tmp_path), tmp_path, folder_state)
    expected = image_problem(image)
    bad_path = image_path
    if expected is None:
        bad_path = label_path
        expected = label_problem(label, image, affine_shift)
        if expected in ("label shape", "affine"):  # these name both files
            assert isinstance(result, DataError) and str(image_path) in str(result)
    event(f"expected: {expected or 'loads'}")
    if expected is None:
        check_volume(result, image, label)
    else:
        assert expected in check_error(result, bad_path)


# the NIfTI-1 header fields a fuzzer should hit: dim, datatype, bitpix, vox_offset,
# scl_slope/inter, qform/sform codes, quaternion, srow, magic
HEADER_FIELDS = {
    "dim": (40, "8h"), "datatype": (70, "h"), "bitpix": (72, "h"), "pixdim": (76, "8f"),
    "vox_offset": (108, "f"), "scl": (112, "2f"), "codes": (252, "2h"),
    "quatern": (256, "6f"), "srow": (280, "12f"), "magic": (344, "4s"),
}
ODD_FLOATS = st.one_of(st.floats(allow_nan=True, allow_infinity=True, width=32),
                       st.sampled_from([0.0, -0.0, 1e38, -1e38, 1e-45]))


@st.composite
def header_edits(draw):
    name = draw(st.sampled_from(sorted(HEADER_FIELDS)))
    offset, fmt = HEADER_FIELDS[name]
    count = int(fmt[:-1] or 1)
    kind = fmt[-1]
    if kind == "h":
        values = draw(st.lists(st.integers(-(2**15), 2**15 - 1), min_size=count, max_size=count))
    elif kind == "f":
        values = draw(st.lists(ODD_FLOATS, min_size=count, max_size=count))
    else:
        values = [draw(st.binary(min_size=4, max_size=4))]
    return name, offset, struct.pack("<" + fmt, *values)


@fuzz()
@given(which=st.sampled_from(["image", "label"]), edits=st.lists(header_edits(), min_size=1,
                                                                   max_size=3),
       gzipped=st.booleans())
def test_odd_header_fields_are_a_data_error_or_a_valid_volume(
    tmp_path, folder_state, which, edits, gzipped
):
    files = {"image": bytearray(nifti_bytes(IMAGE)), "label": bytearray(nifti_bytes(LABEL))}
    for _, offset, packed in edits:
        files[which][offset:offset + len(packed)] = packed
    files = {k: gzip.compress(bytes(v), mtime=0) if gzipped else bytes(v) for k, v in files.items()}
    paths = msd_folder(tmp_path, files["image"], files["label"], ".nii.gz" if gzipped else ".nii")
    result = load_or_error(lambda: load_hippocampus(tmp_path), tmp_path, folder_state)
    if isinstance(result, NengosegError):
        check_error(result, paths[0] if which == "image" else paths[1])
    else:
        check_volume(result)


@fuzz(100)
@given(
    dims=st.lists(st.integers(1, 2**15 - 1), min_size=3, max_size=7).filter(
        lambda d: np.prod(d, dtype=object) > MAX_VOXELS
    ),
    gzipped=st.booleans(),
)
def test_huge_header_dimensions_fail_fast(tmp_path, folder_state, dims, gzipped):
    """A header claiming > MAX_VOXELS voxels is refused before anything is allocated."""
    data = bytearray(nifti_bytes(IMAGE))
    data[40:56] = struct.pack("<8h", len(dims), *dims, *[1] * (7 - len(dims)))
    data = gzip.compress(bytes(data), mtime=0) if gzipped else bytes(data)
    image_path, _ = msd_folder(tmp_path, data, nifti_bytes(LABEL), ".nii")
    tracemalloc.start()
    try:
        result = load_or_error(lambda: load_hippocampus(tmp_path), tmp_path, folder_state)
        peak = tracemalloc.get_traced_memory()[1]
    finally:
        tracemalloc.stop()
    assert "voxels" in check_error(result, image_path)
    assert peak < 5e6, f"{peak / 1e6:.0f} MB allocated before refusing the header"


@fuzz(100)
@given(dims=st.lists(st.integers(1, 400), min_size=3, max_size=3).filter(
    lambda d: 120 < np.prod(d) <= MAX_VOXELS))
def test_header_claiming_more_voxels_than_the_file_holds(tmp_path, folder_state, dims):
    for gzipped in (False, True):
        data = bytearray(nifti_bytes(IMAGE))
        data[40:48] = struct.pack("<4h", 3, *dims)
        data = gzip.compress(bytes(data), mtime=0) if gzipped else bytes(data)
        image_path, _ = msd_folder(tmp_path, data, nifti_bytes(LABEL), ".nii")
        result = load_or_error(lambda: load_hippocampus(tmp_path), tmp_path, folder_state)
        assert "truncated" in check_error(result, image_path)


def _png(array, mode=None):
    out = io.BytesIO()
    Image.fromarray(array, mode).save(out, "PNG") if mode else Image.fromarray(array).save(
        out, "PNG")
    return out.getvalue()


def _other_format(fmt):
    out = io.BytesIO()
    Image.fromarray((IMAGE[..., 0] % 256).astype(np.uint8)).save(out, fmt)
    return out.getvalue()


@pytest.mark.parametrize("content", [
    pytest.param(lambda: _other_format("PNG"), id="png"),
    pytest.param(lambda: _other_format("TIFF"), id="tiff"),
    pytest.param(lambda: _other_format("GIF"), id="gif"),
    pytest.param(lambda: gzip.compress(_other_format("PNG")), id="gzipped-png"),
    pytest.param(lambda: gzip.compress(b""), id="gzipped-nothing"),
    pytest.param(lambda: nifti_bytes(IMAGE)[:348], id="header-only"),
    pytest.param(lambda: nifti_bytes(IMAGE).replace(b"n+1\x00", b"ni1\x00"), id="pair-magic"),
    pytest.param(lambda: "voxels: 6x5x4 ünïcode".encode("latin-1"), id="text"),
])
def test_other_formats_are_not_nifti(tmp_path, folder_state, content):
    image_path, _ = msd_folder(tmp_path, content(), nifti_bytes(LABEL), ".nii.gz")
    result = load_or_error(lambda: load_hippocampus(tmp_path), tmp_path, folder_state)
    assert "cannot read as NIfTI" in check_error(result, image_path)


def test_nifti2_and_uncompressed_files_still_load(tmp_path, folder_state):
    image = nib.Nifti2Image(IMAGE, np.eye(4)).to_bytes()
    msd_folder(tmp_path, gzip.compress(image), gzip.compress(nifti_bytes(LABEL)))
    check_volume(load_hippocampus(tmp_path), IMAGE, LABEL)
    msd_folder(tmp_path, image, nifti_bytes(LABEL), ".nii")
    check_volume(load_hippocampus(tmp_path), IMAGE, LABEL)


# ---------------------------------------------------------------- ISBI PNG pairs

GRAY = (np.arange(30).reshape(6, 5) * 8).astype(np.uint8)
MASK = np.where(np.arange(30).reshape(6, 5) % 4 == 0, 0, 255).astype(np.uint8)


def isbi_folder(root, image_bytes, label_bytes):
    paths = []
    for kind, data in (("image", image_bytes), ("label", label_bytes)):
        (root / "train" / kind).mkdir(parents=True, exist_ok=True)
        path = root / "train" / kind / "0.png"
        path.write_bytes(data)
        paths.append(path)
    return paths


@fuzz()
@given(which=st.sampled_from(["image", "label"]), damage=corruptions(hot=41))
def test_damaged_isbi_png_is_a_data_error(tmp_path, folder_state, which, damage):
    files = {"image": _png(GRAY), "label": _png(MASK)}
    files[which] = corrupt(files[which], damage)
    paths = isbi_folder(tmp_path, files["image"], files["label"])
    result = load_or_error(lambda: load_isbi2012(tmp_path), tmp_path, folder_state)
    if isinstance(result, NengosegError):
        check_error(result, paths[0] if which == "image" else paths[1])
    else:
        x, y, names = result
        assert x.shape == y.shape == (1, 6, 5, 1) and names == ["0"]
        assert set(np.unique(y)) <= {0, 1}


# Pillow modes and the formats a file named .png may really have
MODES = {"L": np.uint8, "P": np.uint8, "RGB": np.uint8, "RGBA": np.uint8, "LA": np.uint8,
         "I;16": np.uint16, "I": np.int32, "1": bool}
FORMATS = ["PNG", "PNG", "PNG", "TIFF", "GIF", "BMP", "JPEG"]


@st.composite
def pil_files(draw, palettes):
    """(bytes, mode, format, array) of a small image in a random mode and format (mostly
    a 6x5 grayscale PNG); pixel values from one of ``palettes`` (None: any byte)."""
    mode = draw(st.sampled_from(["L"] * 8 + sorted(MODES)))
    fmt = draw(st.sampled_from(["PNG"] * 6 + FORMATS))
    shape = draw(st.sampled_from([(6, 5)] * 4 + [(5, 6), (1, 1), (7, 5)]))
    channels = {"RGB": 3, "RGBA": 4, "LA": 2}.get(mode)
    full = shape + ((channels,) if channels else ())
    rng = np.random.default_rng(draw(st.integers(0, 2**32 - 1)))
    palette = draw(st.sampled_from(palettes))
    array = rng.integers(0, 256, full) if palette is None else rng.choice(palette, full)
    array = array.astype(MODES[mode])
    try:
        image = Image.fromarray(array) if mode in ("L", "RGB", "RGBA") else \
            Image.fromarray(array.astype(np.uint8) if mode != "1" else array).convert(mode)
        out = io.BytesIO()
        image.save(out, fmt)
    except (OSError, ValueError, KeyError, TypeError):
        assume(False)  # Pillow cannot write this mode in this format
    return out.getvalue(), image.mode, fmt, np.asarray(image)


ANY_BYTES = [None]
LABEL_PALETTES = [(0, 255), (0, 255), (0, 255), (0, 1, 128, 255), None]


@fuzz()
@given(image=pil_files(ANY_BYTES), label=pil_files(LABEL_PALETTES))
def test_isbi_wrong_formats_modes_shapes_and_values_are_named(tmp_path, folder_state,
                                                              image, label):
    paths = isbi_folder(tmp_path, image[0], label[0])
    result = load_or_error(lambda: load_isbi2012(tmp_path), tmp_path, folder_state)
    for path, (_, mode, fmt, _) in zip(paths, (image, label)):
        if fmt != "PNG":
            assert "cannot read as an image" in check_error(result, path)
            return
        if mode != "L":
            assert "expected a PNG of mode L" in check_error(result, path)
            return
    if image[3].shape != label[3].shape:
        assert "label shape" in check_error(result, paths[1], paths[0])
    elif not set(np.unique(label[3]).tolist()) <= {0, 255}:
        assert "are not allowed" in check_error(result, paths[1])
    else:
        x, y, _ = result
        np.testing.assert_allclose(x[0, ..., 0], image[3] / 255.0, rtol=1e-6)
        np.testing.assert_array_equal(y[0, ..., 0], label[3] == 0)


def _png_chunk(kind, data):
    return struct.pack(">I", len(data)) + kind + data + struct.pack(">I", zlib.crc32(kind + data))


def png_claiming(width, height, color_type=0):
    """A PNG whose (checksummed) header claims ``width`` x ``height``, with 1 row of data."""
    header = struct.pack(">IIBBBBB", width, height, 8, color_type, 0, 0, 0)
    pixels = zlib.compress(b"\x00" + b"\x7f" * min(width, 64))
    return (b"\x89PNG\r\n\x1a\n" + _png_chunk(b"IHDR", header) + _png_chunk(b"IDAT", pixels)
            + _png_chunk(b"IEND", b""))


@st.composite
def huge_sizes(draw):
    """(width, height) of more than MAX_PIXELS pixels, each below 2^31."""
    width = draw(st.integers(1, 2**31 - 1))
    return width, draw(st.integers(MAX_PIXELS // width + 1, 2**31 - 1))


@fuzz(100)
@given(size=huge_sizes(), color_type=st.sampled_from([0, 2, 6]),
       loader=st.sampled_from(["isbi", "denoising"]))
def test_png_claiming_a_huge_image_fails_fast(tmp_path, folder_state, size, color_type, loader):
    width, height = size
    if loader == "isbi":
        path, _ = isbi_folder(tmp_path, png_claiming(width, height, color_type), _png(MASK))
        load = lambda: load_isbi2012(tmp_path)  # noqa: E731
    else:
        (tmp_path / "BSD68").mkdir(exist_ok=True)
        path = tmp_path / "BSD68" / "a.png"
        path.write_bytes(png_claiming(width, height, color_type))
        load = lambda: load_denoising(tmp_path)  # noqa: E731
    tracemalloc.start()
    try:
        result = load_or_error(load, tmp_path, folder_state)
        peak = tracemalloc.get_traced_memory()[1]
    finally:
        tracemalloc.stop()
    check_error(result, path)
    assert peak < 5e6, f"{peak / 1e6:.0f} MB allocated before refusing the header"


# ---------------------------------------------------------------- denoising test sets


@fuzz()
@given(set_name=st.sampled_from(["BSD68", "CBSD68"]), damage=corruptions(hot=41),
       other=pil_files(ANY_BYTES))
def test_damaged_denoising_png_is_a_data_error(tmp_path, folder_state, set_name, damage, other):
    folder = tmp_path / set_name
    folder.mkdir(exist_ok=True)
    (folder / "a.png").write_bytes(_png(GRAY))
    (folder / "b.png").write_bytes(corrupt(other[0] if other[2] == "PNG" else _png(GRAY),
                                           damage))
    result = load_or_error(lambda: load_denoising(tmp_path, set_name), tmp_path, folder_state)
    if isinstance(result, NengosegError):
        check_error(result, folder / "b.png")
    else:
        noisy, clean, names = result
        assert noisy.shape == clean.shape and names == ["a.png", "b.png"]
        assert clean.shape[-1] == (3 if set_name == "CBSD68" else 1)
        assert np.all(np.isfinite(noisy)) and 0 <= clean.min() and clean.max() <= 1


@fuzz(50)
@given(image=pil_files(ANY_BYTES))
def test_denoising_other_formats_are_named(tmp_path, folder_state, image):
    (tmp_path / "Set12").mkdir(exist_ok=True)
    path = tmp_path / "Set12" / "01.png"
    path.write_bytes(image[0])
    result = load_or_error(lambda: load_denoising(tmp_path, "Set12"), tmp_path, folder_state)
    if image[2] != "PNG":
        assert "expected a PNG" in check_error(result, path)
    else:
        assert result[1].shape == (1,) + image[3].shape[:2] + (1,)


# ---------------------------------------------------------------- Caltech airplanes

PHOTO = np.random.default_rng(0).integers(0, 256, (12, 16, 3), dtype=np.uint8)


def _jpeg(array=PHOTO):
    out = io.BytesIO()
    Image.fromarray(array).save(out, "JPEG")
    return out.getvalue()


def _mat(box_coord):
    out = io.BytesIO()
    scipy.io.savemat(out, {"box_coord": box_coord, "obj_contour": np.zeros((2, 3))})
    return out.getvalue()


def airplanes_folder(root, jpeg, mat):
    (root / "images").mkdir(exist_ok=True)
    (root / "Airplanes_Side_2").mkdir(exist_ok=True)
    image_path = root / "images" / "image_0001.jpg"
    mat_path = root / "Airplanes_Side_2" / "annotation_0001.mat"
    image_path.write_bytes(jpeg)
    mat_path.write_bytes(mat)
    return image_path, mat_path


BOX = np.array([[2, 10, 3, 14]], dtype=np.uint16)  # y1, y2, x1, x2 inside 12 x 16


@fuzz()
@given(which=st.sampled_from(["image", "annotation"]), damage=corruptions(hot=200))
def test_damaged_airplane_files_are_a_data_error(tmp_path, folder_state, which, damage):
    jpeg, mat = _jpeg(), _mat(BOX)
    if which == "image":
        jpeg = corrupt(jpeg, damage)
    else:
        mat = corrupt(mat, damage)
    image_path, mat_path = airplanes_folder(tmp_path, jpeg, mat)
    result = load_or_error(lambda: load_airplanes(tmp_path, size=(8, 8)), tmp_path, folder_state)
    if isinstance(result, NengosegError):
        check_error(result, image_path if which == "image" else mat_path)
    else:
        x, boxes, names = result
        assert x.shape == (1, 8, 8, 3) and boxes.shape == (1, 4) and names == ["image_0001"]
        assert np.all((0 <= boxes) & (boxes <= 1))


BOX_VALUES = st.one_of(st.integers(-3, 20), st.sampled_from([0, 1, 12, 16, 2.5, 1e10, np.nan,
                                                             np.inf, -np.inf, 70000]))


@fuzz()
@given(
    values=st.lists(BOX_VALUES, min_size=0, max_size=6),
    dtype=st.sampled_from(["uint8", "uint16", "int32", "float64", "complex128", "str", "bool"]),
    as_row=st.booleans(),
    skip_degenerate=st.booleans(),
)
def test_airplane_box_values_are_checked(tmp_path, folder_state, values, dtype, as_row,
                                         skip_degenerate):
    if dtype == "str":
        box = np.array([str(v) for v in values] or "")
    else:
        with np.errstate(all="ignore"):
            box = np.array(values, dtype=np.float64).astype(dtype)
    box = box.reshape(1, -1) if as_row and box.ndim == 1 else box
    _, mat_path = airplanes_folder(tmp_path, _jpeg(), _mat(box))
    result = load_or_error(
        lambda: load_airplanes(tmp_path, size=(8, 8), skip_degenerate=skip_degenerate),
        tmp_path, folder_state,
    )
    stored = scipy.io.loadmat(str(mat_path))["box_coord"]
    numbers = stored.dtype.kind in "iuf" and stored.size == 4
    if not numbers or not np.all(np.isfinite(stored)) or not np.array_equal(stored,
                                                                           np.round(stored)):
        check_error(result, mat_path)
        return
    y1, y2, x1, x2 = (int(v) for v in stored.ravel())
    degenerate = y2 <= y1 or x2 <= x1
    if degenerate and skip_degenerate:
        assert "degenerate" in check_error(result, tmp_path / "Airplanes_Side_2")
    elif not (1 <= x1 and 1 <= y1 and x2 <= 16 and y2 <= 12):
        assert "lies outside" in check_error(result, mat_path)
    else:
        x, boxes, _ = result
        np.testing.assert_allclose(boxes[0], [(x1 - 1) / 16, (y1 - 1) / 12, x2 / 16, y2 / 12],
                                   rtol=1e-6)
