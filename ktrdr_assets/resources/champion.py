"""MLflow model registry: each symbol's selected model is a version of `ktrdr_<SYMBOL>`, and the
`champion` alias moves to it only when a selection passed every gate (selection guarantees that)."""

from __future__ import annotations

from typing import Any

CHAMPION = "champion"


def registered_name(symbol: str) -> str:
    return f"ktrdr_{symbol}"


def promote_champion(tracking_uri: str, symbol: str, record: dict[str, Any]) -> dict[str, Any]:
    """Register the selected run's model folder and point the champion alias at it.

    Returns what was done; a registry that cannot be reached is reported, not fatal (the manifest
    still names the exact files).
    """
    import mlflow

    run_id = record.get("mlflow_run_id")
    if not run_id:
        return {"registered": False, "reason": "the model run has no MLflow run id"}
    client = mlflow.tracking.MlflowClient(tracking_uri)
    name = registered_name(symbol)
    try:
        if not client.search_registered_models(filter_string=f"name = '{name}'"):
            client.create_registered_model(name, description=f"Selected trading-signal model for {symbol}")
        version = client.create_model_version(
            name,
            source=client.get_run(run_id).info.artifact_uri,
            run_id=run_id,
            tags={"model_type": record["model_type"], "symbol": symbol},
        )
        client.set_registered_model_alias(name, CHAMPION, version.version)
    except Exception as err:  # the manifest stays correct without the registry
        return {"registered": False, "reason": f"{type(err).__name__}: {err}"}
    return {"registered": True, "name": name, "version": int(version.version), "alias": CHAMPION}
