"""User-facing errors: one line that says what was wrong and what to do."""


class FPTError(Exception):
    """A mistake in the user's input; the CLI prints it as one line and exits 2, no traceback."""
