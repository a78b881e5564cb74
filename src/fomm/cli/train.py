"""TEMPORARY: delegates to fomm.train until the move to its package lands."""

from fomm.train import add_train_arguments as add_arguments, run_train as run  # noqa: F401
