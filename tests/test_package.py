"""Install-level checks: version pins, a non-editable install, atomic writes."""

import subprocess
import sys
from pathlib import Path

import pytest

from nengoseg._versions import check_versions
from nengoseg.atomic import atomic_path, write_json

REPO = Path(__file__).resolve().parents[1]


def test_installed_stack_passes_the_check():
    check_versions()


def test_wrong_version_names_package_found_and_needed():
    with pytest.raises(ImportError) as err:
        check_versions({"numpy": ("<1.0", lambda v: v < (1, 0))})
    message = str(err.value)
    assert "numpy" in message and "<1.0" in message
    import numpy

    assert numpy.__version__ in message


def test_missing_package_is_named():
    with pytest.raises(ImportError, match="no-such-package is not installed"):
        check_versions({"no-such-package": ("1.0", lambda v: True)})


def test_non_editable_install_imports_package_and_sample(tmp_path):
    wheel_dir, target = tmp_path / "wheel", tmp_path / "site"
    subprocess.run(
        [sys.executable, "-m", "pip", "wheel", "--no-deps", "--no-build-isolation",
         "-q", "-w", str(wheel_dir), str(REPO)],
        check=True,
    )
    (wheel,) = wheel_dir.glob("nengoseg-*.whl")
    subprocess.run(
        [sys.executable, "-m", "pip", "install", "--no-deps", "-q", "--target", str(target), str(wheel)],
        check=True,
    )
    # every module of the sources imports from the wheel (a subpackage missing from
    # setup.cfg's list would not)
    modules = sorted(
        ".".join(["nengoseg.loihi" if folder == "loihi" else "nengoseg",
                  *path.relative_to(REPO / folder).with_suffix("").parts]).removesuffix(".__init__")
        for folder in ("nengoseg", "loihi") for path in (REPO / folder).rglob("*.py")
    )
    code = (
        f"import importlib; [importlib.import_module(m) for m in {modules!r}];"
        "import nengoseg, nengoseg.loihi, nengoseg.data, nengoseg.cli;"
        "print(nengoseg.__file__);"
        "print(nengoseg.loihi.__file__);"
        "print(len(list(nengoseg.data.sample_path('hippocampus').glob('*/*.nii.gz'))))"
    )
    out = subprocess.run(
        [sys.executable, "-c", code], cwd=tmp_path, env={"PYTHONPATH": str(target)},
        capture_output=True, text=True, check=True,
    ).stdout.split()
    assert out[0].startswith(str(target)) and out[1].startswith(str(target / "nengoseg" / "loihi"))
    assert int(out[2]) >= 2


def test_atomic_write_leaves_old_file_on_error(tmp_path):
    path = tmp_path / "r.json"
    write_json(path, {"a": 1})
    with pytest.raises(RuntimeError):
        with atomic_path(path) as tmp:
            tmp.write_text("half")
            raise RuntimeError("killed")
    assert path.read_text().strip().startswith("{") and '"a": 1' in path.read_text()
    assert sorted(p.name for p in tmp_path.iterdir()) == ["r.json"]


def test_atomic_folder_replacement(tmp_path):
    folder = tmp_path / "ckpt"
    for n in (1, 2):
        with atomic_path(folder) as tmp:
            tmp.mkdir()
            (tmp / "state").write_text(str(n))
    assert (folder / "state").read_text() == "2"
    # the folder is a link to its one current version; no leftovers
    assert sorted(p.name for p in tmp_path.iterdir()) == [".versions", "ckpt"]
    assert len(list((tmp_path / ".versions").iterdir())) == 1
