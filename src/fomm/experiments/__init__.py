"""Experiments: harnesses that train models to answer a research question, outside the library
core (they are the only code that imports both :mod:`fomm.training` and :mod:`fomm.evaluation`).

* :mod:`fomm.experiments.variants`: the model variants trained and compared on equal terms over
  seeds (``fomm experiment variants``); results in docs/research-variants.md.
* :mod:`fomm.experiments.learning_curve`: one variant evaluated as it trains, to choose the budget
  (``fomm experiment curve``).
"""
