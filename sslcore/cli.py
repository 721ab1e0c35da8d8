"""The `sslcore` command: thin argument parsing over the Python API.

Only this module turns errors into exit codes: SSLCoreError -> 2 with the message on stderr;
RunInterrupted (a SIGTERM or SIGINT that stopped `run` or `pretrain` gracefully) -> 128 + the
signal's number, with the command that resumes the run on stderr.
"""

from __future__ import annotations

import argparse
import os
import sys
from typing import Any


def _floats(text: str) -> list[float]:
    try:
        return [float(x) for x in text.split(",") if x.strip()]
    except ValueError:
        raise argparse.ArgumentTypeError(f"expected comma-separated numbers, got {text!r}") from None


def _ints(text: str) -> list[int]:
    try:
        return [int(x) for x in text.split(",") if x.strip()]
    except ValueError:
        raise argparse.ArgumentTypeError(f"expected comma-separated integers, got {text!r}") from None


def _target(args: argparse.Namespace) -> Any:
    """The vertical name, or the config file with the vertical filled in; ``--init`` sets
    ``backbone.init`` on top (keeping the file's ``min_loaded``)."""
    if not args.config:
        init = getattr(args, "init", None)
        return {"vertical": args.vertical, "backbone": {"init": init}} if init else args.vertical
    from sslcore.config import load_yaml
    from sslcore.errors import ConfigError

    raw = load_yaml(args.config)
    named = raw.setdefault("vertical", args.vertical)
    if named != args.vertical:
        raise ConfigError(f"vertical: {args.config} is for {named!r} but the command line names "
                          f"{args.vertical!r}")
    if getattr(args, "init", None) and isinstance(raw.setdefault("backbone", {}), dict):
        old = raw["backbone"].get("init")
        keep = {"min_loaded": old["min_loaded"]} if isinstance(old, dict) and \
            "min_loaded" in old else {}
        raw["backbone"]["init"] = {"source": args.init} | keep
    return raw


def _with_tracking(target: Any, args: argparse.Namespace) -> Any:
    """``--no-register`` and ``--artifact-root`` on top of the config (its tracking block)."""
    tracking: dict[str, Any] = {}
    if getattr(args, "no_register", False):
        tracking["register"] = False
    if getattr(args, "artifact_root", None):
        tracking["artifact_root"] = args.artifact_root
    if not tracking:
        return target
    raw = {"vertical": target} if isinstance(target, str) else dict(target)
    block = raw.get("tracking")
    raw["tracking"] = (dict(block) if isinstance(block, dict) else {}) | tracking
    return raw


def cmd_plugins(args: argparse.Namespace) -> int:
    from sslcore.plugins import load_registries

    regs = load_registries()
    for info in regs.plugins:
        if info.error:
            print(f"{info.name} {info.version}  FAILED TO LOAD: {info.error}")
            continue
        print(f"{info.name} {info.version}  ({info.module})")
        for kind, names in regs.components_of(info.module).items():
            print(f"  {kind:<14} {', '.join(names)}")
    return 0


def _resume_command(args: argparse.Namespace) -> str:
    """This command line with ``--resume``: what continues the run after an interruption."""
    import shlex

    argv = list(getattr(args, "argv", None) or [])
    return shlex.join(["sslcore", *argv, *([] if "--resume" in argv else ["--resume"])])


def cmd_run(args: argparse.Namespace) -> int:
    from sslcore import interrupts
    from sslcore.api import compare
    from sslcore.evaluate.report import headline_lines

    with interrupts.resume_hint(_resume_command(args)):
        report = compare(_with_tracking(_target(args), args), quick=args.quick,
                         tracking_uri=args.tracking_uri,
                         budget=args.budget, resume=args.resume,
                         label_fractions=args.label_fractions, seeds=args.seeds,
                         progress=not args.no_progress)
    print()
    print(report)
    for line in headline_lines(report.headline):  # groups ranked per fraction; model logged
        print(line)
    for key, why in sorted(report.dropped.items()):
        print(f"Left out for these data: {key.replace('.', ' ', 1)} ({why})")
    print(f"\nMLflow parent run {report.run_id} in {report.tracking_uri}; best model "
          f"({report.best_method}, chosen on validation): {report.model_uri}")
    uri = f" --tracking-uri {args.tracking_uri}" if args.tracking_uri else ""
    if report.registered_model:
        name, version = report.registered_model.removeprefix("models:/").rsplit("/", 1)
        print(f"Registered as {report.registered_model} (alias {name}@candidate); make it the "
              f"champion with: sslcore promote {name} {version}{uri}")
    if report.tracking_uri.startswith(("http://", "https://")):  # a server has its own UI
        print(f"See the run at: {report.tracking_uri.rstrip('/')}/#/experiments/"
              f"{report.experiment_id}/runs/{report.run_id}")
    else:
        print(f"Open the UI with: sslcore ui{uri}")
    print(f"Serve the model with: sslcore serve {report.registered_model or report.model_uri}"
          f"{uri}")
    return 0


def _launch_and_close_runs(forward: list[str], args: argparse.Namespace) -> int:
    """torchrun the workers; if they finally fail, mark their MLflow runs FAILED.

    A SIGTERM or SIGINT to this launcher goes to torchrun and on to the workers, which stop
    gracefully (rank 0 marks the runs KILLED); runs still RUNNING after that are marked KILLED
    here, and the resume command is printed.
    """
    import signal
    import tempfile

    from sslcore.distributed import launch_torchrun
    from sslcore.interrupts import RESUME_ENV
    from sslcore.tracking import RUN_RECORD_ENV, fail_recorded_runs

    resume = _resume_command(args)
    with tempfile.TemporaryDirectory(prefix="sslcore-launch-") as tmp:
        record = os.path.join(tmp, "runs.json")
        os.environ[RUN_RECORD_ENV] = record  # inherited by torchrun and its workers
        os.environ[RESUME_ENV] = resume  # the workers' stop messages and tags name this command
        try:
            code = launch_torchrun(forward, nproc=args.nproc, nnodes=args.nnodes,
                                   rdzv_endpoint=args.rdzv_endpoint,
                                   max_restarts=args.max_restarts)
        finally:
            os.environ.pop(RUN_RECORD_ENV, None)
            os.environ.pop(RESUME_ENV, None)
        stopped = {128 + s: signal.Signals(s).name for s in (signal.SIGTERM, signal.SIGINT)}
        if code in stopped:
            for run_id in fail_recorded_runs(record, "KILLED", f"interrupted: {stopped[code]}",
                                             resume):
                print(f"marked MLflow run {run_id} KILLED", file=sys.stderr)
            print(f"sslcore: stopped by {stopped[code]}; resume with: {resume}", file=sys.stderr)
        elif code != 0:
            for run_id in fail_recorded_runs(record):
                print(f"marked MLflow run {run_id} FAILED", file=sys.stderr)
        return code


def cmd_pretrain(args: argparse.Namespace) -> int:
    under_torchrun = "LOCAL_RANK" in os.environ
    if (args.nproc > 1 or args.nnodes > 1) and not under_torchrun:
        forward = ["pretrain", args.vertical]
        forward += ["--config", args.config] if args.config else []
        forward += ["--quick"] if args.quick else []
        forward += ["--resume"] if args.resume or args.max_restarts else []
        forward += ["--tracking-uri", args.tracking_uri] if args.tracking_uri else []
        forward += ["--budget", args.budget] if args.budget else []
        forward += ["--init", args.init] if args.init else []
        return _launch_and_close_runs(forward, args)
    from sslcore import interrupts
    from sslcore.api import pretrain

    with interrupts.resume_hint(_resume_command(args)):  # under torchrun: the launcher's
        ckpt = pretrain(_target(args), quick=args.quick, tracking_uri=args.tracking_uri,
                        budget=args.budget, resume=args.resume, progress=not args.no_progress)
    if int(os.environ.get("RANK", "0")) == 0:
        print(f"checkpoint: {ckpt}; `sslcore run {args.vertical} --resume` with the same config "
              "reuses it")
    return 0


def cmd_export(args: argparse.Namespace) -> int:
    import json

    from sslcore.errors import ConfigError
    from sslcore.export import export

    spec = None
    if args.spec:
        try:
            spec = json.loads(open(args.spec).read())
        except (OSError, ValueError) as exc:
            raise ConfigError(f"--spec: {args.spec} is not a readable JSON file ({exc})") from None
    out = export(args.source, args.out_dir, spec=spec, input_shape=args.input_shape,
                 tracking_uri=args.tracking_uri)
    cfg = json.loads((out / "config.json").read_text())
    print(f"exported the {cfg['sslcore']['backbone']} encoder to {out}: load it with "
          f"`backbone.init: {out}` (or --init {out})")
    if cfg["sslcore"]["library"] == "timm":
        print(f"  plain timm: timm.create_model('local-dir:{out.resolve()}', pretrained=True)")
    elif cfg["sslcore"]["library"] == "transformers":
        print(f"  plain transformers: AutoModel.from_pretrained('{out.resolve()}')")
    return 0


def cmd_ui(args: argparse.Namespace) -> int:
    import subprocess

    from sslcore.tracking import default_artifact_root, prepare_ui, resolve_uri
    from sslcore.tracking.experiments import runs_page

    uri = resolve_uri(args.tracking_uri)
    cmd = [sys.executable, "-m", "mlflow", "ui", "--backend-store-uri", uri,
           "--host", "127.0.0.1", "--port", str(args.port), "--workers", "1"]
    if default_artifact_root(uri):  # what the UI itself uploads goes beside the store too
        cmd += ["--artifacts-destination", default_artifact_root(uri)]
    base = f"http://127.0.0.1:{args.port}"
    print(f"MLflow UI at {base} (Ctrl-C to stop)")
    for name, exp_id, view in prepare_ui(uri):  # the Runs tab, with the metric columns
        print(f"  {name}: {runs_page(base, exp_id, view)}")
    return subprocess.call(cmd)


def cmd_serve(args: argparse.Namespace) -> int:
    import subprocess

    from sslcore.serving import serve_command
    from sslcore.tracking import resolve_uri

    cmd, env = serve_command(args.model_uri, args.host, args.port,
                             resolve_uri(args.tracking_uri))
    print(f"Serving {args.model_uri} at http://{args.host}:{args.port}/invocations "
          "(Ctrl-C to stop)", flush=True)
    return subprocess.call(cmd, env=env)


def cmd_promote(args: argparse.Namespace) -> int:
    from sslcore.tracking import CHAMPION, promote, resolve_uri

    name, version = promote(resolve_uri(args.tracking_uri), args.model, args.version)
    tags = version.tags
    what = (f" ({tags['method']}, {tags['arm']} arm, label fraction {tags['label_fraction']}, "
            f"test {tags['metric']} {tags['score']})" if "method" in tags else "")
    print(f"models:/{name}@{CHAMPION} -> version {version.version}{what}")
    return 0


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="sslcore", description=__doc__.splitlines()[0])
    sub = parser.add_subparsers(dest="command", required=True)
    sub.add_parser("plugins", help="list plugins and their components").set_defaults(func=cmd_plugins)

    def common(p: argparse.ArgumentParser) -> None:
        p.add_argument("vertical", help="an installed vertical, e.g. fraud_transactions")
        p.add_argument("--config", help="YAML overriding the vertical's recipe")
        p.add_argument("--quick", action="store_true", help="small data and budgets (demo)")
        p.add_argument("--budget", choices=["quick", "standard", "thorough"],
                       help="training budget preset: scales every min_steps and max_steps "
                       "0.25x / 1x / 4x (default: the recipe's; --quick selects quick)")
        p.add_argument("--tracking-uri", help="MLflow tracking URI (default sqlite:///mlflow.db)")
        p.add_argument("--resume", action="store_true", help="continue from the last checkpoint")
        p.add_argument("--no-progress", action="store_true", help="hide progress bars")
        p.add_argument("--init", help="start the encoder from pretrained weights (sets "
                       "backbone.init): a .safetensors/.pt file, a Hugging Face or `sslcore "
                       "export` directory, timm:<name>.<tag>, hf:<org>/<model>, runs:/<run "
                       "id>[/path] or models:/<name>/<version>")

    run = sub.add_parser("run", help="pretrain, then compare SSL with labeled-only baselines")
    common(run)
    run.add_argument("--label-fractions", type=_floats, help="e.g. 0.01,0.05,0.1,0.25,1")
    run.add_argument("--seeds", type=_ints, help="e.g. 0,1,2")
    run.add_argument("--no-register", action="store_true", help="do not register the best "
                     "model in the MLflow Model Registry (tracking.register: false)")
    run.add_argument("--artifact-root", help="where a new MLflow experiment keeps artifacts "
                     "(tracking.artifact_root; default: mlartifacts/ beside a sqlite store)")
    run.set_defaults(func=cmd_run)

    pre = sub.add_parser("pretrain", help="pretrain the encoder, optionally with torchrun")
    common(pre)
    pre.add_argument("--nproc", type=int, default=1, help="processes per machine")
    pre.add_argument("--nnodes", type=int, default=1, help="machines")
    pre.add_argument("--rdzv-endpoint", help="HOST:PORT of the rendezvous (several machines)")
    pre.add_argument("--max-restarts", type=int, default=0, help="restarts after a rank dies")
    pre.set_defaults(func=cmd_pretrain)

    exp = sub.add_parser("export", help="write a pretrained encoder as model.safetensors + "
                         "config.json, loadable by backbone.init, timm or transformers")
    exp.add_argument("source", help="a pretraining checkpoint directory or file, runs:/<run "
                     "id>[/path] (a pretrain run or its experiment run) or models:/...")
    exp.add_argument("out_dir", help="the directory to write (created)")
    exp.add_argument("--spec", help="JSON file {\"name\", \"params\", \"input_shape\"} of the "
                     "backbone, when the checkpoint has no backbone.json")
    exp.add_argument("--input-shape", type=_ints, help="per-sample shape, e.g. 1,64,64, when "
                     "the run recorded none")
    exp.add_argument("--tracking-uri", help="MLflow store of a URI source")
    exp.set_defaults(func=cmd_export)

    ui = sub.add_parser("ui", help="the MLflow UI on the local store, 127.0.0.1, one worker")
    ui.add_argument("--tracking-uri", help="the MLflow store to browse (default "
                    "sqlite:///mlflow.db, as for run)")
    ui.add_argument("--port", type=int, default=5000, help="port on 127.0.0.1 (default 5000)")
    ui.set_defaults(func=cmd_ui)

    serve = sub.add_parser("serve", help="serve a logged model over HTTP (MLflow's scoring "
                           "server, POST /invocations), with this environment's packages")
    serve.add_argument("model_uri", help="models:/sslcore-<vertical>@champion, "
                       "models:/<name>/<version>, models:/m-... or runs:/<run id>/model")
    serve.add_argument("--tracking-uri", help="the store the model is in")
    serve.add_argument("--host", default="127.0.0.1", help="address to listen on (default "
                       "127.0.0.1: this machine only)")
    serve.add_argument("--port", type=int, default=5001, help="port (default 5001)")
    serve.set_defaults(func=cmd_serve)

    promote = sub.add_parser("promote", help="make a registered model version the champion "
                             "(alias champion: models:/<name>@champion)")
    promote.add_argument("model", help="a vertical (its model sslcore-<vertical>) or a "
                         "registered model's name")
    promote.add_argument("version", help="the version to promote")
    promote.add_argument("--tracking-uri", help="the store the model is registered in")
    promote.set_defaults(func=cmd_promote)
    return parser


def main(argv: list[str] | None = None) -> int:
    os.environ.setdefault("HF_HUB_OFFLINE", "1")
    args = build_parser().parse_args(argv)
    args.argv = list(sys.argv[1:] if argv is None else argv)
    from sslcore.errors import RunInterrupted, SSLCoreError

    try:
        return args.func(args)
    except RunInterrupted as exc:
        if int(os.environ.get("RANK", "0") or 0) == 0:  # one message per torchrun job
            print(f"sslcore: {exc.reason}", file=sys.stderr)
            if exc.killed_runs:
                print(f"sslcore: MLflow runs marked KILLED: {', '.join(exc.killed_runs)}",
                      file=sys.stderr)
            if exc.resume_command:
                print(f"sslcore: resume with: {exc.resume_command}", file=sys.stderr)
        return exc.exit_code
    except SSLCoreError as exc:
        config = getattr(args, "config", None)
        where = f"{config}: " if config and config not in str(exc) else ""
        print(f"sslcore: error: {where}{exc}", file=sys.stderr)
        return 2
    except KeyboardInterrupt:
        print("sslcore: interrupted", file=sys.stderr)
        return 130


if __name__ == "__main__":
    sys.exit(main())
