"""``sslcore export``: a pretrained encoder as files that timm, transformers or sslcore load.

The source is a pretraining checkpoint: a local checkpoint directory (``sslcore_runs/...``,
``last.pt`` in it) or file, or an MLflow URI: ``runs:/<id>`` of a ``pretrain`` run or of the
experiment (parent) run holding one, ``runs:/<id>/checkpoint/last.pt``, or ``models:/...`` of
a model logged by a run (its run's pretrain child). The ``pretrain`` child run logs the
checkpoint as ``checkpoint/last.pt``; its ``model`` entry is the pretext task's state dict,
whose ``backbone.*`` tensors are the encoder.

Rebuilding the encoder needs its backbone block and the data's per-sample shape (the *spec*,
``{"name", "params", "input_shape"}``), found in order: the ``spec`` argument; a
``backbone.json`` beside the checkpoint (local) or in the run's ``checkpoint/`` artifacts
(:func:`write_backbone_spec` writes it); the experiment run's logged config
(``backbone.name``, ``backbone.params.*``) with ``input_shape`` given.

The export (:mod:`sslcore.init.export_format`): ``model.safetensors`` + ``config.json``
(+ ``sslcore_extra.safetensors``). Load it with ``backbone.init: DIR``, or without sslcore::

    cfg = json.load(open("DIR/config.json"))
    timm.create_model(cfg["architecture"], pretrained=True,
                      pretrained_cfg_overlay=dict(file="DIR/model.safetensors"),
                      **cfg["model_args"])                   # or "local-dir:DIR"
    transformers.AutoModel.from_pretrained("DIR")            # transformers backbones

Example::

    sslcore export runs:/4f2a... encoder/          # the CLI
    sslcore.export.export("runs:/4f2a...", "encoder/")
"""

from __future__ import annotations

import json
import tempfile
from pathlib import Path
from typing import Any

from sslcore.errors import CheckpointError, ConfigError

SPEC_FILE = "backbone.json"
CHECKPOINT_ARTIFACT = "checkpoint/last.pt"  # where sslcore.pretraining logs it
_MLFLOW = ("runs:/", "models:/")


def backbone_spec(name: str, params: dict[str, Any], input_shape: tuple[int, ...],
                  backbone: Any = None) -> dict[str, Any]:
    """What rebuilding an encoder needs: its backbone name, params and per-sample shape.

    With the built ``backbone``, its ``export_params()`` (when it has one) replace ``params``:
    a backbone whose architecture came from ``backbone.init`` (a Hugging Face model) records
    it, so it is rebuilt without the init.
    """
    if backbone is not None and callable(getattr(backbone, "export_params", None)):
        params = backbone.export_params()
    return {"name": name, "params": dict(params),
            "input_shape": [int(d) for d in input_shape]}


def write_backbone_spec(directory: str | Path, cfg: Any, input_shape: tuple[int, ...],
                        backbone: Any = None) -> Path:
    """Write ``backbone.json`` (the spec of ``cfg.backbone`` for ``input_shape``; pass the
    built ``backbone`` too, see :func:`backbone_spec`) into a checkpoint directory, so
    :func:`export` finds it; log it beside the checkpoint artifact."""
    path = Path(directory) / SPEC_FILE
    path.parent.mkdir(parents=True, exist_ok=True)
    spec = backbone_spec(cfg.backbone.name, cfg.backbone.params, input_shape, backbone)
    path.write_text(json.dumps(spec, indent=2) + "\n")
    return path


def _read_spec(path: Path) -> dict[str, Any] | None:
    if not path.is_file():
        return None
    try:
        spec = json.loads(path.read_text())
    except ValueError as exc:
        raise ConfigError(f"export: {path} is not valid JSON ({exc})") from None
    return spec if isinstance(spec, dict) else None


def _literal(text: str) -> Any:
    if text in ("True", "False", "None"):
        return {"True": True, "False": False, "None": None}[text]
    try:
        return json.loads(text)
    except ValueError:
        return text


def spec_from_params(params: dict[str, str]) -> dict[str, Any] | None:
    """The backbone name and params from an experiment run's logged config (flattened
    ``backbone.name``, ``backbone.params.a.b`` strings); None when the run has none."""
    name = params.get("backbone.name")
    if not name:
        return None
    out: dict[str, Any] = {}
    for key, value in params.items():
        if key.startswith("backbone.params."):
            *parents, leaf = key.removeprefix("backbone.params.").split(".")
            node = out
            for part in parents:
                node = node.setdefault(part, {})
            node[leaf] = _literal(value)
    return {"name": name, "params": out}


class _RunSource:
    """The checkpoint and spec of an MLflow run URI, downloaded into ``tmp``."""

    def __init__(self, uri: str, tmp: Path, tracking_uri: str | None) -> None:
        from mlflow import MlflowClient

        from sslcore.tracking import resolve_uri

        self.tracking_uri = resolve_uri(tracking_uri)
        self.client = MlflowClient(self.tracking_uri)
        self.tmp = tmp
        self.uri = uri

    def _run_of_model(self, ref: str) -> str:
        if ref.startswith("m-"):  # an MLflow 3 logged model id
            run_id = self.client.get_logged_model(ref).source_run_id
        elif "@" in ref:
            name, alias = ref.split("@", 1)
            run_id = self.client.get_model_version_by_alias(name, alias).run_id
        else:
            name, _, version = ref.rpartition("/")
            run_id = self.client.get_model_version(name, version).run_id
        if not run_id:
            raise CheckpointError(f"export: model {self.uri} was not logged by a run")
        return run_id

    def pretrain_run(self, run_id: str) -> Any:
        run = self.client.get_run(run_id)
        if run.data.tags.get("sslcore.kind") == "pretrain":
            return run
        children = self.client.search_runs(
            [run.info.experiment_id],
            filter_string=f"tags.mlflow.parentRunId = '{run_id}' and "
                          "tags.`sslcore.kind` = 'pretrain'",
            order_by=["attributes.start_time DESC"], max_results=1)
        if not children:
            raise CheckpointError(
                f"export: run {run_id} is neither an sslcore pretrain run nor an experiment "
                "run with one (tag sslcore.kind=pretrain); pass the pretrain run's id")
        return children[0]

    def resolve(self) -> tuple[Path, dict[str, Any] | None, dict[str, Any]]:
        """``(local checkpoint file, spec or None, provenance)``."""
        from mlflow.artifacts import download_artifacts

        rest = self.uri.removeprefix("runs:/").removeprefix("models:/").strip("/")
        if self.uri.startswith("models:/"):
            run_id, path = self._run_of_model(rest), ""
        else:
            run_id, _, path = rest.partition("/")
        run = self.pretrain_run(run_id) if not path else self.client.get_run(run_id)
        rid = run.info.run_id
        path = path or CHECKPOINT_ARTIFACT
        local = Path(download_artifacts(run_id=rid, artifact_path=path, dst_path=str(self.tmp),
                                        tracking_uri=self.tracking_uri))
        if local.is_dir():
            local = local / "last.pt"
        spec = _read_spec(local.parent / SPEC_FILE)
        if spec is None:
            spec = self._logged_spec(rid, str(Path(path).parent / SPEC_FILE))
        if spec is None:
            parent = run.data.tags.get("mlflow.parentRunId")
            for candidate in (rid, parent):
                if candidate:
                    found = spec_from_params(self.client.get_run(candidate).data.params)
                    if found:
                        spec = found
                        break
        provenance = {"run_id": rid, "artifact": path, "tracking_uri": self.tracking_uri}
        return local, spec, provenance

    def _logged_spec(self, run_id: str, path: str) -> dict[str, Any] | None:
        from mlflow.artifacts import download_artifacts
        from mlflow.exceptions import MlflowException

        try:
            local = download_artifacts(run_id=run_id, artifact_path=path,
                                       dst_path=str(self.tmp / "spec"),
                                       tracking_uri=self.tracking_uri)
        except (MlflowException, OSError):
            return None
        return _read_spec(Path(local))


def _local_checkpoint(source: Path) -> Path:
    from sslcore.train.checkpoint import latest_checkpoint

    if source.is_file():
        return source
    found = latest_checkpoint(source) if source.is_dir() else None
    if found is None:
        raise CheckpointError(f"export: {source} is not a checkpoint file or a directory "
                              "holding one (last.pt); give a pretraining checkpoint directory "
                              "(sslcore_runs/<vertical>/<key>/checkpoints) or an MLflow URI")
    return found


def export(source: str | Path, out_dir: str | Path, *, spec: dict[str, Any] | None = None,
           input_shape: tuple[int, ...] | None = None,
           tracking_uri: str | None = None,
           fallback_input_shape: tuple[int, ...] | None = None) -> Path:
    """Write the pretrained encoder of ``source`` to ``out_dir`` and return ``out_dir``.

    Args:
        source: a checkpoint directory or file, or an MLflow URI (see the module docstring).
        out_dir: the export directory (created; files in it are overwritten).
        spec: ``{"name", "params", "input_shape"}`` of the backbone, when the checkpoint has
            no ``backbone.json``.
        input_shape: the per-sample shape, when the spec found lacks it.
        tracking_uri: the MLflow store of a URI source (default: $MLFLOW_TRACKING_URI, else
            sqlite:///mlflow.db).
        fallback_input_shape: the per-sample shape used only when the spec found has none
            (``backbone.init: runs:/<id>`` passes the new backbone's).

    Raises:
        CheckpointError: no checkpoint, a corrupt one, or one that does not fit the backbone.
        ConfigError: the backbone spec cannot be found or names an unknown backbone.
    """
    from sslcore.init.export_format import write_export
    from sslcore.plugins import load_registries
    from sslcore.train.checkpoint import load_checkpoint

    with tempfile.TemporaryDirectory(prefix="sslcore-export-") as tmp:
        text = str(source)
        if text.startswith(_MLFLOW):
            from mlflow.exceptions import MlflowException

            try:
                ckpt, found, provenance = _RunSource(text, Path(tmp), tracking_uri).resolve()
            except MlflowException as exc:
                raise CheckpointError(f"export: {text} could not be read from the MLflow "
                                      f"store ({exc.message}); check the id and "
                                      "--tracking-uri") from None
        else:
            ckpt = _local_checkpoint(Path(text).expanduser())
            found = _read_spec(ckpt.parent / SPEC_FILE)
            provenance = {"checkpoint": str(ckpt.resolve())}
        spec = dict(spec or found or {})
        shape_given = input_shape if input_shape is not None else \
            None if spec.get("input_shape") else fallback_input_shape
        if shape_given is not None:
            spec["input_shape"] = [int(d) for d in shape_given]
        if not spec.get("name") or not spec.get("input_shape"):
            raise ConfigError(
                f"export: {text} has no {SPEC_FILE} beside its checkpoint"
                f"{'' if spec.get('name') else ' and no logged backbone config'}; give the "
                "backbone and the data's per-sample shape: --spec FILE with {\"name\": "
                "\"resnet18\", \"params\": {}, \"input_shape\": [1, 64, 64]}"
                + (f" (here: --input-shape, the backbone is {spec['name']!r})"
                   if spec.get("name") else ""))
        state = load_checkpoint(ckpt)
        tensors = state.get("model", state)
        backbone_state = {k.removeprefix("backbone."): v for k, v in tensors.items()
                          if k.startswith("backbone.")}
        if not backbone_state:
            raise CheckpointError(f"export: {ckpt} holds no backbone.* tensors; is it an sslcore "
                                  "pretraining checkpoint?")
        entry = load_registries().backbones.get(spec["name"])
        shape = tuple(int(d) for d in spec["input_shape"])
        backbone = entry.build(spec.get("params") or {}, input_shape=shape)
        try:
            backbone.load_state_dict(backbone_state)
        except RuntimeError as exc:
            raise CheckpointError(f"export: the checkpoint {ckpt} does not fit backbone "
                                  f"{spec['name']!r} {spec.get('params') or {}} on inputs "
                                  f"{shape} ({str(exc)[:400]}); check the spec") from exc
        provenance |= {"step": int(state.get("step", -1))}
        return write_export(backbone, out_dir, name=spec["name"],
                            params=entry.params.model_validate(spec.get("params") or {})
                            .model_dump(mode="json"), input_shape=shape,
                            provenance=provenance)
