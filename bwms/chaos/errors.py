"""The harness's own exception."""


class ChaosError(RuntimeError):
    """A scenario could not run: a part did not start, or a step timed out.

    A loss or a duplicate is not an error: it is a result, reported in the table.
    """
