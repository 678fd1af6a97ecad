"""Exceptions raised for bad input; each message names the problem and the fix."""


class DiffBMPError(Exception):
    """Base class of every error diffbmp raises on purpose."""


class InputError(DiffBMPError, ValueError):
    """A tensor, file or argument handed to diffbmp is unusable."""


class ConfigError(DiffBMPError, ValueError):
    """A configuration file or option is invalid."""


class BackendUnavailableError(DiffBMPError, RuntimeError):
    """The requested rendering backend cannot run on this machine."""
