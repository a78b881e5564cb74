"""TEMPORARY: delegates to fomm.landmarks until the move to its package lands."""

from fomm.landmarks import add_train_landmarks_arguments as add_arguments, run_train_landmarks as run  # noqa: F401
