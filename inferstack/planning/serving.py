"""The serving engine's command line, shared by every target kind."""

from __future__ import annotations

from inferstack import catalog
from inferstack.spec.models import DeploymentSpec, Model


def engine_args(spec: DeploymentSpec, model_name: str, model: Model) -> list[str]:
    """The engine's command line: the catalog's arguments for the engine, then the spec's own.

    ``{tensor_parallel}`` stays a placeholder: a mixed fleet's instance types carry different
    GPU counts, so the node fills it in at boot (see `inferstack.render.BOOT_TIME_ARGS`).
    """
    engine = catalog.engines()[spec.serving.engine]
    values = {
        "model_dir": f"/models/{model_name}",
        "model_name": model_name,
        "port": str(spec.serving.port),
        "context_length": str(model.context_length),
    }
    args = [a.format(**values, tensor_parallel="{tensor_parallel}") for a in engine.args]
    return [*engine.entrypoint, *args, *spec.serving.args]
