"""Exceptions of the engine.

Every error a user can cause (a bad file, a wrong option) derives from :class:`InputError`; the command
line turns it into one ``error:`` line and exit status 2. Anything else is an internal failure (exit 1).
"""

from __future__ import annotations


class SmoothSegNetError(Exception):
    """Base class of every exception raised on purpose by the engine."""


class InputError(SmoothSegNetError, ValueError):
    """The input (file, folder, option, model card) is unusable; the message says what to do."""


class VolumeReadError(InputError):
    """A CT volume could not be read: missing, empty, truncated, corrupt or of unknown format."""


class VolumeValidationError(InputError):
    """A CT volume was read but is not a usable CT (modality, dimensions, intensities, geometry)."""


class DicomSeriesError(InputError):
    """A DICOM folder holds no usable CT series, or several and none was chosen."""


class ModelError(InputError):
    """A model card or its weights are invalid, missing or do not match their sha256."""


class ExportError(InputError):
    """An export cannot be made from what was given (e.g. DICOM-SEG without a DICOM source)."""


class PacsError(SmoothSegNetError):
    """A PACS could not be reached or refused the objects; the outputs stay on disk."""


class Cancelled(SmoothSegNetError):
    """The user cancelled a long-running operation; nothing half-written was left behind."""
