"""Errors a user can act on (a missing file, a hostile id, a failed run): the CLI prints them and exits 2."""


class UserError(Exception):
    """Raised by the intake, in-process runs and estimates with a message meant for the person who ran them."""
