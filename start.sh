#!/usr/bin/env bash
# One command for a new user: set up a virtualenv, index the bundled essay, open the chat on 127.0.0.1:7860.
set -euo pipefail
cd "$(dirname "${BASH_SOURCE[0]}")"
export GRADIO_ANALYTICS_ENABLED=False HF_HUB_OFFLINE=1 PIP_DISABLE_PIP_VERSION_CHECK=1
VENV=${RAG_VENV:-.venv}
if [ ! -x "$VENV/bin/python" ]; then
  echo "==> Creating $VENV"
  "${PYTHON:-python3}" -m venv "$VENV"
fi
. "$VENV/bin/activate"
# (Not `import rag`: run from the checkout, that finds the source folder even when nothing is installed.)
if [ ! -x "$VENV/bin/rag" ] || ! python -c "import importlib.metadata as m; m.version('essay-rag')" 2>/dev/null; then
  echo "==> Installing (torch 2.13.0 CPU first; a few minutes the first time)"
  python -m pip install -q --upgrade pip
  python -m pip install -q torch==2.13.0
  python -m pip install -q -e .
fi
echo "==> Indexing the bundled essay (nothing to do if it is already indexed)"
rag index
echo "==> Starting the chat on http://127.0.0.1:7860 (Ctrl+C to stop)"
exec rag chat "$@"
