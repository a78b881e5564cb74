"""TEMPORARY: delegates to fomm.reconstruct until the move to its package lands."""

from fomm.reconstruct import add_reconstruct_arguments as add_arguments, run_reconstruct as run  # noqa: F401
