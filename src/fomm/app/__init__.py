"""Animation for people who do not use a terminal: the local web app behind ``fomm serve`` and the
real-time loop behind ``fomm live``.

* :mod:`fomm.app.catalog`: the models a server offers (checkpoint + config pairs found in a
  folder, plus the bundled one), loaded on first use.
* :mod:`fomm.app.job`: one animation request (uploaded files in, result files out), with no web
  framework in it.
* :mod:`fomm.app.web`: the Gradio page and its API (imports Gradio: the ``app`` extra).
* :mod:`fomm.app.live`: frames from a camera or a stream animated as they come, dropping input
  frames rather than falling behind; :mod:`fomm.app.window` shows them.

Nothing is imported here, so ``import fomm.app.live`` never needs Gradio.
"""
