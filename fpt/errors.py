"""User-facing errors: one line that says what was wrong and what to do."""


class FPTError(Exception):
    """A mistake in the user's input; the CLI prints it as one line and exits 2, no traceback."""


class InputError(FPTError, ValueError):
    """A mistake in what a Python caller passed (fpt.build, fpt.train, ...): the same one line as the command line's,
    catchable as ValueError too."""


class Preempted(FPTError):
    """The run was stopped by SIGTERM/SIGUSR1 after saving its last step; the command exits 143 (128 + SIGTERM)."""

    exit_code = 143
