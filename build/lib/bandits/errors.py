"""The one error type for bad user input; the CLI turns it into a one-line message and exit code 2."""


class InputError(ValueError):
    """Raised for invalid user input (lengths, probabilities, names, group sizes, ...)."""
