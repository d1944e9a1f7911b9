"""Caltech-101 "airplanes" with the original bounding-box annotations, for box regression.

Each ``images/image_XXXX.jpg`` has ``Airplanes_Side_2/annotation_XXXX.mat`` whose
``box_coord`` is ``[y1, y2, x1, x2]`` in 1-based, inclusive MATLAB pixel coordinates.
The annotations are read by a small, strict MAT-file reader (`read_mat_numbers`).
"""

import math
import struct
import zlib
from pathlib import Path

import numpy as np
from PIL import Image

from nengoseg.data.imagefile import one_line, read_image
from nengoseg.errors import DataError

IMAGES_DIR, ANNOTATIONS_DIR = "images", "Airplanes_Side_2"


def load_airplanes(root, size=(64, 96), skip_degenerate=True):
    """Load the images, resized, and their boxes relative to the image size.

    Returns ``x`` (N, H, W, 3) float32 in [0, 1] resized with Pillow to ``size = (H, W)``;
    ``boxes`` (N, 4) float32 ``(x1, y1, x2, y2)`` as fractions of the image width and
    height, pixel edges included: the box of pixels ``x1 .. x2`` (1-based, inclusive)
    spans ``(x1 - 1) / width .. x2 / width``, so a box over the whole image is
    ``(0, 0, 1, 1)``; and the names (``"image_0001"``, ...). Boxes of zero width or
    height in the annotation (``annotation_0118``) are left out unless
    ``skip_degenerate=False``.
    """
    root = Path(root)
    image_paths = _image_paths(root / IMAGES_DIR)
    x, boxes, names = [], [], []
    for image_path in image_paths:
        mat_path = root / ANNOTATIONS_DIR / image_path.name.replace("image_", "annotation_")
        mat_path = mat_path.with_suffix(".mat")
        y1, y2, x1, x2 = _read_box(mat_path)
        if skip_degenerate and (y2 <= y1 or x2 <= x1):
            continue
        image = _read_rgb(image_path)
        width, height = image.size
        _check_box_inside(mat_path, (y1, y2, x1, x2), width, height)
        x.append(_resized(image, size))
        boxes.append(((x1 - 1) / width, (y1 - 1) / height, x2 / width, y2 / height))
        names.append(image_path.stem)
    if not x:
        raise DataError(
            f"{root / ANNOTATIONS_DIR}: every box is degenerate (zero width or height), so no "
            "image is left; expected at least one box of positive size (or skip_degenerate=False)"
        )
    return np.stack(x), np.array(boxes, dtype=np.float32), names


def _image_paths(folder):
    if not folder.is_dir():
        raise DataError(f"{folder}: folder not found; expected the image_XXXX.jpg files")
    paths = sorted(p for p in folder.glob("image_*.jpg") if not p.name.startswith("."))
    if not paths:
        raise DataError(f"{folder}: no image_*.jpg files in this folder")
    return paths


def _read_box(path):
    """``[y1, y2, x1, x2]`` of an annotation file, as Python ints (the file has uint8/16).

    Only ``box_coord`` is read, by `read_mat_numbers` (not scipy: its compiled reader
    crashes the interpreter on some damaged files). It must hold 4 finite, whole,
    real numbers; a truncated or damaged file is a DataError naming the file.
    """
    if not path.is_file():
        raise DataError(f"{path}: annotation not found; every image needs its annotation_XXXX.mat")
    expected = "expected a MATLAB file with a 1x4 box_coord [y1, y2, x1, x2]"
    try:
        raw = path.read_bytes()
    except OSError as err:
        raise DataError(f"{path}: cannot read the file ({err.strerror or err})") from None
    try:
        box = read_mat_numbers(raw, "box_coord")
    except BadMatFile as err:
        raise DataError(f"{path}: cannot read box_coord ({one_line(err)}); {expected}") from None
    if box is None:
        raise DataError(f"{path}: no box_coord in this file; {expected}")
    if box.size != 4:
        raise DataError(f"{path}: box_coord has shape {box.shape}; {expected}")
    box = box.ravel()
    if not (np.all(np.isfinite(box)) and np.array_equal(box, np.round(box))
            and np.all(np.abs(box) < 2**31)):
        raise DataError(f"{path}: box_coord {box.tolist()} holds non-integral values; {expected}")
    return [int(v) for v in box]


class BadMatFile(Exception):
    """A MATLAB file `read_mat_numbers` cannot read; the message says why."""


# MAT-file level 5 (MATLAB 5 to 7.2; what scipy.io.savemat writes): data types
# (miINT8 ...) -> numpy, numeric array classes (mxDOUBLE_CLASS ...), and a bound on
# what a compressed element may expand to (an annotation is a few kilobytes)
_MI_DTYPES = {1: "i1", 2: "u1", 3: "i2", 4: "u2", 5: "i4", 6: "u4", 7: "f4", 9: "f8",
              12: "i8", 13: "u8"}
_MI_INT8, _MI_INT32, _MI_UINT32, _MI_MATRIX, _MI_COMPRESSED = 1, 5, 6, 14, 15
_MX_CLASSES = {1: "cell", 2: "struct", 3: "object", 4: "char", 5: "sparse", 6: "double",
               7: "single", 8: "int8", 9: "uint8", 10: "int16", 11: "uint16", 12: "int32",
               13: "uint32", 14: "int64", 15: "uint64"}
_MX_NUMERIC = range(6, 16)
MAX_MAT_ELEMENT_BYTES = 1 << 24


def read_mat_numbers(raw, name):
    """The real numeric array ``name`` of a MAT-file (level 5) held in ``raw``, or None.

    A small, strict reader: every length is checked against the bytes present and
    compressed elements are expanded at most to MAX_MAT_ELEMENT_BYTES, so a damaged
    file raises BadMatFile instead of crashing or allocating. Other variables are
    skipped unread. Raises BadMatFile naming the problem.
    """
    if len(raw) < 128 or not raw.startswith(b"MATLAB 5.0 MAT-file"):
        raise BadMatFile("no 'MATLAB 5.0 MAT-file' header (MATLAB v4 and v7.3 files are not read)")
    endian = {b"IM": "<", b"MI": ">"}.get(raw[126:128])
    if endian is None or struct.unpack(endian + "H", raw[124:126])[0] != 0x0100:
        raise BadMatFile("bad version or byte-order mark in the header")
    pos = 128
    while pos < len(raw):
        kind, data, pos = _mat_element(raw, pos, endian)
        if kind == _MI_COMPRESSED:
            kind, data, _ = _mat_element(_mat_inflate(data), 0, endian)
        if kind != _MI_MATRIX:
            continue
        var_name, array_class, is_complex, dims, data, at = _mat_array_header(data, endian)
        if var_name != name:
            continue
        if array_class not in _MX_NUMERIC or is_complex:
            kind = "complex" if is_complex else _MX_CLASSES.get(array_class, f"class {array_class}")
            raise BadMatFile(f"{name} is a MATLAB {kind} array; expected real numbers")
        kind, values, _ = _mat_element(data, at, endian)
        if kind not in _MI_DTYPES:
            raise BadMatFile(f"data type {kind} of {name} is not a number type")
        count = math.prod(dims)
        itemsize = np.dtype(_MI_DTYPES[kind]).itemsize
        if len(values) != count * itemsize:
            raise BadMatFile(f"{name} holds {len(values)} bytes, its shape {dims} needs "
                             f"{count} values of {itemsize} bytes")
        values = np.frombuffer(values, endian + _MI_DTYPES[kind])
        return values.reshape(dims, order="F").astype(values.dtype.newbyteorder("="))
    return None


def _mat_element(buf, pos, endian):
    """(type, data, position after it) of the data element at ``pos``."""
    if pos + 8 > len(buf):
        raise BadMatFile(f"truncated: a data element at byte {pos} is cut off")
    first, size = struct.unpack(endian + "II", buf[pos:pos + 8])
    if first >> 16:  # small data element: type and size in 4 bytes, up to 4 bytes of data
        kind, size = first & 0xFFFF, first >> 16
        if size > 4:
            raise BadMatFile(f"bad small data element at byte {pos}")
        return kind, buf[pos + 4:pos + 4 + size], pos + 8
    end = pos + 8 + size
    if end > len(buf):
        raise BadMatFile(f"truncated: a data element at byte {pos} claims {size} bytes, "
                         f"{len(buf) - pos - 8} are left")
    padded = end if first == _MI_COMPRESSED else end + (-size % 8)
    return first, buf[pos + 8:end], min(padded, len(buf))


def _mat_inflate(data):
    stream = zlib.decompressobj()
    try:
        out = stream.decompress(data, MAX_MAT_ELEMENT_BYTES + 1)
    except zlib.error as err:
        raise BadMatFile(f"damaged compressed data: {err}") from None
    if len(out) > MAX_MAT_ELEMENT_BYTES:
        raise BadMatFile(f"a compressed element expands beyond {MAX_MAT_ELEMENT_BYTES} bytes")
    if not stream.eof:
        raise BadMatFile("truncated compressed data")
    return out


def _mat_array_header(data, endian):
    """(name, class, complex, dims, data, position of the real part) of an miMATRIX."""
    kind, flags, pos = _mat_element(data, 0, endian)
    if kind != _MI_UINT32 or len(flags) != 8:
        raise BadMatFile("bad array flags")
    flags = struct.unpack(endian + "I", flags[:4])[0]
    kind, dims, pos = _mat_element(data, pos, endian)
    if kind != _MI_INT32 or len(dims) < 8 or len(dims) % 4:
        raise BadMatFile("bad array dimensions")
    dims = struct.unpack(endian + f"{len(dims) // 4}i", dims)
    if min(dims) < 0:
        raise BadMatFile(f"negative array dimensions {dims}")
    kind, name, pos = _mat_element(data, pos, endian)
    if kind != _MI_INT8:
        raise BadMatFile("bad array name")
    return name.decode("latin-1"), flags & 0xFF, bool(flags & 0x800), dims, data, pos


def _check_box_inside(path, box, width, height):
    y1, y2, x1, x2 = box
    if not (1 <= x1 and 1 <= y1 and x2 <= width and y2 <= height):
        raise DataError(
            f"{path}: box [y1, y2, x1, x2] = {list(box)} lies outside its {width}x{height} image; "
            f"expected 1 <= x1, x2 <= {width} and 1 <= y1, y2 <= {height}"
        )


def _read_rgb(path):
    """A JPEG as an RGB Pillow image (a DataError naming the file if it cannot be read)."""
    return Image.fromarray(read_image(path, ("JPEG",), mode="RGB"))


def _resized(image, size):
    height, width = size
    resized = image.resize((width, height), Image.Resampling.BILINEAR)
    return np.asarray(resized, dtype=np.float32) / 255.0
