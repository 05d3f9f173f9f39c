"""User-facing errors: one line that says what was wrong and what to do."""


class FPTError(Exception):
    """A mistake in the user's input; the CLI prints it as one line and exits 2, no traceback."""


class Preempted(FPTError):
    """The run was stopped by SIGTERM/SIGUSR1 after saving its last step; the command exits 143 (128 + SIGTERM)."""

    exit_code = 143
