"""The stack nengoseg is tested with, checked on import.

nengo-dl 3.6 imports ``keras.engine.functional`` (gone from Keras 2.13 on),
nengo 3.2 fails on numpy 2 and nengo-loihi 1.1 needs nengo 3.1-3.2, so a
mismatched install fails in confusing places; this check fails early instead,
naming the package, the version found and the version needed.
"""

import platform
from importlib import metadata

# package name -> (human-readable requirement, predicate on the version tuple)
REQUIRED = {
    "tensorflow": ("2.12.x", lambda v: v[:2] == (2, 12)),
    "keras": ("2.12.x", lambda v: v[:2] == (2, 12)),
    "nengo": ("3.2.0", lambda v: v[:3] == (3, 2, 0)),
    "nengo-dl": ("3.6.0", lambda v: v[:3] == (3, 6, 0)),
    "nengo-loihi": ("1.1.0", lambda v: v[:3] == (1, 1, 0)),
    "nengo-extras": (">=0.5", lambda v: v[:2] >= (0, 5)),
    "numpy": (">=1.21,<1.24", lambda v: (1, 21) <= v[:2] < (1, 24)),
    "scipy": (">=1.8,<1.11", lambda v: (1, 8) <= v[:2] < (1, 11)),
}


def _parse(version):
    parts = []
    for piece in version.split("."):
        digits = "".join(c for c in piece if c.isdigit())
        if not digits:
            break
        parts.append(int(digits))
        if len(digits) != len(piece):
            break
    return tuple(parts)


def check_versions(required=REQUIRED):
    """Raise ImportError naming every package whose installed version is wrong."""
    problems = []
    for name, (wanted, ok) in required.items():
        try:
            found = metadata.version(name)
        except metadata.PackageNotFoundError:
            problems.append(f"{name} is not installed (nengoseg needs {name} {wanted})")
            continue
        if not ok(_parse(found)):
            problems.append(f"{name} {found} is installed but nengoseg needs {name} {wanted}")
    if problems:
        raise ImportError(
            "nengoseg: incompatible packages:\n  - "
            + "\n  - ".join(problems)
            + "\nInstall the pinned stack with `bash scripts/setup.sh` "
            "(or `pip install -c constraints.txt .`)."
        )


# the packages whose versions a run records (results.json)
STACK = ("tensorflow", "keras", "nengo", "nengo-dl", "nengo-loihi", "numpy", "scipy", "nibabel")


def versions():
    """Python's and the stack's installed versions (None for a missing package)."""
    found = {"python": platform.python_version()}
    for name in STACK:
        try:
            found[name] = metadata.version(name)
        except metadata.PackageNotFoundError:
            found[name] = None
    return found
