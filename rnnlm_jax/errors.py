"""The error every data module raises for bad input data or arguments."""


class DataError(ValueError):
  """A problem with input data or data arguments; the message is one line
  naming the file or split."""
