"""The code location loads light: the code server and every run process import `ktrdr_assets.definitions`,
and none of the heavy libraries is imported before a step needs it (torch, scikit-learn, xgboost, Optuna,
matplotlib, imbalanced-learn, MLflow). A model type whose module imports torch at the top fails here."""

from __future__ import annotations

import json
import os
import subprocess
import sys

from ktrdr_assets.paths import PROJECT_ROOT

HEAVY = ("torch", "sklearn", "xgboost", "optuna", "matplotlib", "imblearn", "mlflow")
SCRIPT = (
    "import json, sys; import ktrdr_assets.definitions as d; "
    f"print(json.dumps([m for m in {HEAVY!r} if m in sys.modules]))"
)


def test_loading_the_definitions_imports_no_heavy_library() -> None:
    env = {**os.environ, "KTRDR_REGISTER_SYMBOLS_AT_LOAD": "0", "PYTHONWARNINGS": "ignore"}
    done = subprocess.run(
        [sys.executable, "-c", SCRIPT], cwd=PROJECT_ROOT, env=env, capture_output=True, text=True, timeout=300
    )
    assert done.returncode == 0, done.stderr[-2000:]
    assert json.loads(done.stdout.strip().splitlines()[-1]) == []
