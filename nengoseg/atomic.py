"""Atomic writes: a reader sees the old file or the new one, never half of one.

Files are written beside their target and renamed over it. A folder cannot be
renamed over a non-empty folder, so a folder ``PATH`` that is replaced as a whole
is a symbolic link to a version in ``.versions/`` beside it: the new version is
written in full, then a new link is renamed over the old one (one atomic rename),
and the old version removed. A kill at any instant leaves either the old folder
or the new one at ``PATH``; leftover versions are removed by the next replacement.
"""

import contextlib
import json
import os
import re
import shutil
import tempfile
import uuid
from pathlib import Path

VERSIONS = ".versions"


@contextlib.contextmanager
def atomic_path(path):
    """Yield a temporary path beside ``path``; move it over ``path`` on success.

    Works for files and for folders (the yielded path does not exist yet).
    On error the temporary is removed and ``path`` is left untouched.
    """
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp_dir = tempfile.mkdtemp(prefix=f".{path.name}.", dir=path.parent)
    tmp = Path(tmp_dir) / path.name
    try:
        yield tmp
        if tmp.is_dir() and not tmp.is_symlink():
            replace_folder(tmp, path)
        else:
            os.replace(tmp, path)
    finally:
        shutil.rmtree(tmp_dir, ignore_errors=True)


def replace_folder(new, path):
    """Make ``path`` the folder ``new`` (on the same file system) in one atomic step.

    ``path`` becomes a relative symbolic link to ``.versions/<name>.<id>``; what it
    showed before (a link's version, or a plain folder) is removed afterwards.
    """
    new, path = Path(new), Path(path)
    versions = path.parent / VERSIONS
    versions.mkdir(parents=True, exist_ok=True)
    tag = uuid.uuid4().hex[:12]
    target = versions / f"{path.name}.{tag}"
    os.replace(new, target)
    link = path.parent / f".{path.name}.link.{tag}"
    os.symlink(os.path.join(VERSIONS, target.name), link)
    if path.exists() and not path.is_symlink():
        if path.is_dir():  # a plain folder (an older run): move it aside first
            os.replace(path, versions / f"{path.name}.plain.{tag}")
        else:
            os.unlink(link)
            raise IsADirectoryError(f"{path} is a file, not a folder")
    os.replace(link, path)
    _remove_old_versions(path)


def remove_folder(path):
    """Remove a folder replaced with `replace_folder` (or a plain one): first the
    link (one atomic step), then its versions."""
    path = Path(path)
    if path.is_symlink():
        os.unlink(path)
    elif path.is_dir():
        trash = path.parent / VERSIONS / f"{path.name}.removed.{uuid.uuid4().hex[:12]}"
        trash.parent.mkdir(parents=True, exist_ok=True)
        os.replace(path, trash)
    _remove_old_versions(path)


def _remove_old_versions(path):
    versions = path.parent / VERSIONS
    if not versions.is_dir():
        return
    current = os.path.basename(os.readlink(path)) if path.is_symlink() else None
    mine = re.compile(re.escape(path.name) + r"\.((plain|removed)\.)?[0-9a-f]{12}$")
    for old in versions.iterdir():
        if old.name != current and mine.match(old.name):
            shutil.rmtree(old, ignore_errors=True)
    for stray in path.parent.glob(f".{path.name}.link.*"):
        stray.unlink(missing_ok=True)


def write_text(path, text):
    with atomic_path(path) as tmp:
        tmp.write_text(text)
        with open(tmp, "rb+") as f:
            os.fsync(f.fileno())


def write_json(path, obj):
    write_text(path, json.dumps(obj, indent=2, sort_keys=False, default=_to_builtin) + "\n")


def _to_builtin(value):
    # numpy scalars and arrays -> Python numbers and lists
    if hasattr(value, "tolist"):
        return value.tolist()
    if isinstance(value, Path):
        return str(value)
    raise TypeError(f"cannot write {type(value).__name__} to JSON")


def read_json(path, what="file"):
    """The JSON object in ``path``; a DataError naming the file when it is missing,
    unreadable, truncated or not a JSON object (``what`` says what the file is)."""
    from nengoseg.errors import DataError

    path = Path(path)
    try:
        text = path.read_bytes().decode("utf-8")
    except FileNotFoundError:
        raise DataError(f"{path}: missing ({what})") from None
    except OSError as err:
        raise DataError(f"{path}: cannot read the {what}: {err.strerror or err}") from None
    except UnicodeDecodeError:
        raise DataError(f"{path}: the {what} is not UTF-8 text (a damaged file?)") from None
    try:
        value = json.loads(text)
    except ValueError as err:
        raise DataError(f"{path}: the {what} is not valid JSON ({err}); a truncated or "
                        "damaged file: delete it to redo what wrote it") from None
    if not isinstance(value, dict):
        raise DataError(f"{path}: the {what} must hold a JSON object, got {type(value).__name__}")
    return value
