"""The `stellar` command: one entry point for running, checking and benchmarking StellarStack."""

from __future__ import annotations

import argparse
import logging
import signal
import sys
import threading
import time
from pathlib import Path


def _progress(msg: str) -> None:
    print(f"  • {msg}", flush=True)


def cmd_dev(args: argparse.Namespace) -> int:
    from .devstack.stack import DevStack, StackOptions

    opts = StackOptions(http_port=args.port, aws_port=args.aws_port, mqtt_port=args.mqtt_port,
                        ws_port=args.ws_port, broker=args.broker, runtime=args.runtime, store=args.store)
    if args.data_dir:
        opts.data_dir = Path(args.data_dir)
    print("Starting StellarStack (dev)…", flush=True)
    stack = DevStack(opts, progress=_progress)
    stop = threading.Event()
    # Handled explicitly (not via KeyboardInterrupt) so Ctrl-C works even when the shell
    # started us with SIGINT ignored, as non-interactive shells do for background jobs.
    for sig in (signal.SIGINT, signal.SIGTERM):
        signal.signal(sig, lambda *_: stop.set())
    try:
        stack.start()
        print("\nStellarStack is running:\n")
        for name, url in stack.urls.items():
            print(f"  {name:<8} {url}")
        print(f"\n  login    {opts.admin_email} / {opts.admin_password}"
              "   (set STELLAR_ADMIN_EMAIL / STELLAR_ADMIN_PASSWORD to change)")
        print("\nPress Ctrl-C to stop everything.", flush=True)
        while not stop.wait(1.0):
            pass
    except KeyboardInterrupt:
        pass
    finally:
        print("\nStopping…", flush=True)
        started = time.monotonic()
        stack.stop()
        print(f"Stopped in {time.monotonic() - started:.1f}s; nothing left running.", flush=True)
    return 0


def cmd_images_build(args: argparse.Namespace) -> int:
    from .images import docker_available, ensure_demo_image

    if not docker_available():
        print("stellar: no Docker engine answers; nothing to build", file=sys.stderr)
        return 2
    tag = ensure_demo_image(progress=_progress, force=args.force)
    print(tag)
    return 0


def cmd_blueprints_validate(args: argparse.Namespace) -> int:
    """Check blueprint files (YAML or JSON); one line per file, exit 2 if any is bad."""
    from stellar_protocol.blueprint import BlueprintError, load_blueprint

    failed = 0
    for path in args.files:
        try:
            bp = load_blueprint(Path(path))
            print(f"{path}: ok ({bp.id})")
        except BlueprintError as exc:
            print(f"stellar: {exc}", file=sys.stderr)
            failed += 1
    return 2 if failed else 0


def cmd_blueprints_import(args: argparse.Namespace) -> int:
    """An egg (or blueprint) file → blueprint JSON on stdout; warnings on stderr with -w."""
    import json

    from stellar_protocol.blueprint import BlueprintError
    from stellar_protocol.eggs import import_text

    try:
        data = Path(args.file).read_bytes()
        result = import_text(data, args.file)
    except OSError as exc:
        print(f"stellar: {args.file}: cannot read: {exc.strerror or exc}", file=sys.stderr)
        return 2
    except BlueprintError as exc:
        print(f"stellar: {exc}".replace("\n", " "), file=sys.stderr)
        return 2
    print(json.dumps(result.blueprint.to_json(), indent=2, ensure_ascii=False))
    if args.warnings:
        for warning in result.warnings:
            print(f"warning: {warning}", file=sys.stderr)
    return 0


def cmd_blueprints_schema(args: argparse.Namespace) -> int:
    from stellar_protocol.blueprint import json_schema_text

    sys.stdout.write(json_schema_text())
    return 0


def cmd_agent(args: argparse.Namespace) -> int:
    from stellar_agent.cli import main as agent_main

    return int(agent_main(["run", "--config", args.config]) or 0)


def cmd_bench(args: argparse.Namespace) -> int:
    """Each scenario lives in ``stellar.bench.<name>`` with ``run(argv) -> int`` and prints JSON."""
    import importlib

    module = importlib.import_module(f"stellar.bench.{args.scenario}")
    return int(module.run(args.rest))


def cmd_template_routes(args: argparse.Namespace) -> int:
    from .samroutes import TEMPLATE, sync

    if sync(check=args.check):
        print(f"{TEMPLATE.name}: API routes match the Chalice route table")
        return 0
    if args.check:
        print(f"stellar: {TEMPLATE.name} routes differ from app.routes; run `stellar template routes`",
              file=sys.stderr)
        return 1
    print(f"{TEMPLATE.name}: API routes regenerated from the Chalice route table")
    return 0


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="stellar", description=__doc__)
    parser.add_argument("-v", "--verbose", action="store_true", help="debug logging")
    sub = parser.add_subparsers(dest="command", required=True)

    dev = sub.add_parser("dev", help="run the whole stack on this machine")
    dev.add_argument("--port", type=int, default=8080, help="HTTP port for the panel and API")
    dev.add_argument("--aws-port", type=int, default=4566, help="port for moto (local AWS)")
    dev.add_argument("--mqtt-port", type=int, default=18830, help="broker port for agents (MQTT over TCP)")
    dev.add_argument("--ws-port", type=int, default=18831, help="broker port for browsers (MQTT over WebSocket)")
    dev.add_argument("--broker", choices=["auto", "mosquitto", "embedded"], default="auto")
    dev.add_argument("--runtime", choices=["auto", "docker", "process"], default="auto")
    dev.add_argument("--data-dir", help="where local state lives (default .stellar/dev)")
    dev.add_argument("--store", choices=["dynamodb", "postgres"], default="dynamodb",
                     help="control-plane store: DynamoDB (moto) or PostgreSQL (STELLAR_DATABASE_ADMIN_URL)")
    dev.set_defaults(func=cmd_dev)

    images = sub.add_parser("images", help="local container images").add_subparsers(dest="sub", required=True)
    build = images.add_parser("build", help="build the demo game image locally")
    build.add_argument("--force", action="store_true")
    build.set_defaults(func=cmd_images_build)

    bps = sub.add_parser("blueprints", help="blueprint tools").add_subparsers(dest="sub", required=True)
    validate = bps.add_parser("validate", help="check blueprint files")
    validate.add_argument("files", nargs="+")
    validate.set_defaults(func=cmd_blueprints_validate)
    imp = bps.add_parser("import", help="convert a Pterodactyl/Pelican egg to blueprint JSON (stdout)")
    imp.add_argument("file")
    imp.add_argument("-w", "--warnings", action="store_true", help="print conversion warnings on stderr")
    imp.set_defaults(func=cmd_blueprints_import)
    schema = bps.add_parser("schema", help="print the blueprint JSON Schema")
    schema.set_defaults(func=cmd_blueprints_schema)

    bench = sub.add_parser("bench", help="benchmarks: print JSON measurements")
    bench.add_argument("scenario", help="which benchmark (e.g. store, agent)")
    bench.add_argument("rest", nargs=argparse.REMAINDER, help="options for that benchmark")
    bench.set_defaults(func=cmd_bench)

    tpl = sub.add_parser("template", help="template.yaml tools").add_subparsers(dest="sub", required=True)
    routes = tpl.add_parser("routes", help="regenerate the API routes in template.yaml from app.routes")
    routes.add_argument("--check", action="store_true", help="only report drift (exit 1)")
    routes.set_defaults(func=cmd_template_routes)

    agent = sub.add_parser("agent", help="run a node agent")
    agent.add_argument("--config", required=True)
    agent.set_defaults(func=cmd_agent)
    return parser


def main(argv: list[str] | None = None) -> int:
    args = build_parser().parse_args(argv)
    logging.basicConfig(level=logging.DEBUG if args.verbose else logging.WARNING,
                        format="%(asctime)s %(levelname)s %(name)s: %(message)s")
    return int(args.func(args))


if __name__ == "__main__":
    sys.exit(main())
