"""``stellar-agent run --config FILE``: the entry point a node's service manager runs."""

from __future__ import annotations

import argparse
import logging
import sys

from .config import ConfigError, load


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="stellar-agent", description="StellarStack node agent")
    parser.add_argument("-v", "--verbose", action="store_true", help="debug logging")
    sub = parser.add_subparsers(dest="command", required=True)
    run = sub.add_parser("run", help="connect to the broker and run game servers")
    run.add_argument("--config", required=True, help="agent config file (YAML or JSON)")
    args = parser.parse_args(argv)
    logging.basicConfig(
        level=logging.DEBUG if args.verbose else logging.INFO,
        stream=sys.stderr,
        format="%(asctime)s %(levelname)s %(name)s: %(message)s",
    )
    try:
        config = load(args.config)
    except ConfigError as exc:
        print(f"stellar-agent: {exc}", file=sys.stderr)
        return 2
    from .agent import Agent

    Agent(config).run_forever()
    return 0


if __name__ == "__main__":
    sys.exit(main())
