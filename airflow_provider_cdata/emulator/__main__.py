"""``python -m airflow_provider_cdata.emulator``: serve the emulated CData API on 127.0.0.1:8765."""

from __future__ import annotations

import argparse
import json
import os
import shlex
import sys
from pathlib import Path

from airflow_provider_cdata.emulator.faults import parse_fault_spec
from airflow_provider_cdata.emulator.server import DEFAULT_HOST, DEFAULT_PORT, Emulator


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="python -m airflow_provider_cdata.emulator", description="Emulate the Powered by CData API."
    )
    parser.add_argument("--host", default=DEFAULT_HOST, help="interface to listen on (default %(default)s)")
    parser.add_argument("--port", type=int, default=DEFAULT_PORT, help="port (default %(default)s; 0: any)")
    parser.add_argument(
        "--state", metavar="FILE", help="keep accounts and connections in FILE across restarts"
    )
    parser.add_argument(
        "--demo",
        action="store_true",
        help="create a parent key pair and a child account, and print AIRFLOW_CONN_CDATA_DEFAULT",
    )
    parser.add_argument(
        "--demo-env-file",
        metavar="FILE",
        help="with --demo: also write 'export AIRFLOW_CONN_CDATA_DEFAULT=...' to FILE (mode 600)",
    )
    parser.add_argument("--flow-token-ttl", type=float, default=180.0, help="connect-link lifetime, seconds")
    parser.add_argument("--public-url", help="root URL customers' browsers use for the connect page")
    parser.add_argument(
        "--fault",
        action="append",
        default=[],
        metavar="SPEC",
        help="inject a fault: KIND[:key=value,...], e.g. 503:rate=0.3, 429:retry_after=1, "
        "latency:seconds=0.02, drop:route=list,times=2, html, truncated (repeatable)",
    )
    parser.add_argument("--seed", type=int, default=0, help="seed for fault draws (default %(default)s)")
    return parser


def main(argv: list[str] | None = None) -> int:
    args = build_parser().parse_args(argv)
    try:
        rules = [parse_fault_spec(spec) for spec in args.fault]
    except (TypeError, ValueError) as exc:
        print(f"error: bad --fault: {exc}", file=sys.stderr)
        return 2
    emulator = Emulator(
        args.host,
        args.port,
        state_path=args.state,
        flow_token_ttl=args.flow_token_ttl,
        seed=args.seed,
        public_url=args.public_url,
        keep_log=False,
    )
    for rule in rules:
        emulator.ctx.faults.add(rule)

    def ready(bound: Emulator) -> None:
        if args.demo:
            _print_demo(bound, f"{args.public_url or bound.root_url}/api", args.demo_env_file)
        print(f"CData emulator serving {bound.base_url} (Ctrl-C to stop)", flush=True)

    emulator.serve_forever(ready)
    return 0


def _print_demo(emulator: Emulator, api_url: str, env_file: str | None) -> None:
    demo = emulator.demo_credentials()
    value = json.dumps(demo.airflow_connection(api_url))
    line = f"export AIRFLOW_CONN_CDATA_DEFAULT={shlex.quote(value)}"
    print(f"Demo parent account: {demo.parent_id}")
    print(f"Demo child account:  {demo.account_id}")
    print("Point Airflow's cdata_default at this emulator with:")
    print(line, flush=True)
    if env_file:
        path = Path(env_file)
        path.parent.mkdir(parents=True, exist_ok=True)
        fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
        with os.fdopen(fd, "w", encoding="utf-8") as handle:
            handle.write(line + "\n")


if __name__ == "__main__":
    sys.exit(main())
