"""Errors a user can cause. Library code raises these; the CLI turns them into one-line messages."""


class UcprotectError(Exception):
    """Base class: the message names the file or setting and what to do about it."""


class ImageError(UcprotectError):
    """An input image cannot be read, decoded or written."""


class OutputError(UcprotectError):
    """A report, plot or weights file cannot be written (disk full, no permission, a folder in the way)."""


class WeightsError(UcprotectError):
    """A weights file is missing, corrupt or incompatible with this version."""


class BackboneError(UcprotectError):
    """A backbone is unknown or its pretrained files are unavailable."""


class ConfigError(UcprotectError):
    """An option or combination of options is invalid."""


class DataError(UcprotectError):
    """A data folder is empty, unreadable or has the wrong layout."""


def require_at_least(*checks: tuple[str, int | float | None, int | float]) -> None:
    """Refuse the first ``(flag, value, lowest)`` whose value is below its lowest (None: the flag was left out)."""
    for flag, value, lowest in checks:
        if value is not None and value < lowest:
            raise ConfigError(f"{flag} {value}: must be at least {lowest}")
