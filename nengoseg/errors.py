"""Errors a user can act on. The CLI prints their message on one line and exits 2."""


class NengosegError(Exception):
    """Base class for errors caused by the user's input (files, config, arguments)."""


class ConfigError(NengosegError):
    """A config key is unknown or its value is not allowed; the message names both."""


class DataError(NengosegError):
    """A data file or folder is unreadable or inconsistent; the message names the file."""


class ConversionError(NengosegError):
    """A Keras layer or setting cannot be turned into a spiking network; names the layer."""
