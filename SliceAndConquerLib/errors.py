"""Errors a user can act on. The CLI prints them as one line and exits with code 2."""


class InputError(ValueError):
    """Bad input from the user: an unreadable file, a 2D image, an empty target, ..."""


class FetchError(RuntimeError):
    """A registry package could not be downloaded or unpacked."""
