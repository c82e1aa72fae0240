"""The Gradio chat UI over the `rag` pipeline: `build_app()` / `launch()` in `ui.app`, `rag chat` in `ui.cli`.

Imports stay lazy so that `rag --help` (which loads `ui.cli` as a plug-in) never pays for importing Gradio. Nothing
here changes the process environment: the app turns Gradio's analytics off on its own Blocks
(`analytics_enabled=False`), and the `rag` CLI sets its environment defaults in its own entry point.
"""

from __future__ import annotations

__all__ = ["build_app", "launch"]


def __getattr__(name: str):
    if name in __all__:
        from ui import app

        return getattr(app, name)
    raise AttributeError(f"module 'ui' has no attribute {name!r}")
