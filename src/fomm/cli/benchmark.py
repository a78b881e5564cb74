"""TEMPORARY: delegates to fomm.benchmark until the move to its package lands."""

from fomm.benchmark import add_benchmark_arguments as add_arguments, run_benchmark as run  # noqa: F401
