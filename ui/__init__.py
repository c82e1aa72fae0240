"""The Gradio chat UI over the `rag` pipeline: `build_app()` / `launch()` in `ui.app`, `rag chat` in `ui.cli`.

Imports stay lazy so that `rag --help` (which loads `ui.cli` as a plug-in) never pays for importing Gradio.
"""

from __future__ import annotations

import os

os.environ["GRADIO_ANALYTICS_ENABLED"] = "False"  # before gradio is imported: no calls home

__all__ = ["build_app", "launch"]


def __getattr__(name: str):
    if name in __all__:
        from ui import app

        return getattr(app, name)
    raise AttributeError(f"module 'ui' has no attribute {name!r}")
