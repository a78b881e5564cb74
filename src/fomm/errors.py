"""The base of errors caused by a user's input, which the command line reports as one line."""


class UserError(ValueError):
    """A missing or unusable input file, a bad option value: the message says what and where."""
