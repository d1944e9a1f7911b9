"""nengoseg: Keras segmentation networks as spiking networks on Nengo, NengoDL and Loihi."""

import os as _os

from nengoseg._versions import check_versions as _check_versions

__version__ = "0.1.0"

if not _os.environ.get("NENGOSEG_SKIP_VERSION_CHECK"):
    _check_versions()

from nengoseg.errors import ConfigError, DataError, NengosegError  # noqa: E402

__all__ = ["ConfigError", "DataError", "NengosegError", "__version__"]
