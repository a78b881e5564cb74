"""TEMPORARY: delegates to fomm.evaluate until the move to its package lands."""

from fomm.evaluate import add_evaluate_arguments as add_arguments, run_evaluate as run  # noqa: F401
