"""``python -m airflow_provider_cdata.emulator``: serve the emulated CData API on 127.0.0.1:8765."""

from __future__ import annotations

import argparse
import json
import os
import shlex
import sys
import tempfile
import uuid
from pathlib import Path

from airflow_provider_cdata.emulator.faults import parse_fault_spec
from airflow_provider_cdata.emulator.process import serving_line
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
    parser.add_argument(
        "--demo-parent-id",
        type=_uuid,
        metavar="UUID",
        help="with --demo: the demo parent account's id (default: a random one, kept in --state)",
    )
    parser.add_argument(
        "--demo-account-id",
        type=_uuid,
        metavar="UUID",
        help="with --demo: the demo child account's id (default: a random one, kept in --state)",
    )
    parser.add_argument(
        "--demo-key-file",
        metavar="FILE",
        help="with --demo: write the demo parent's private key (PEM) to FILE (mode 600) on every start, "
        "and print a connection that reads it (extra private_key_path) instead of carrying the key",
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


def _uuid(text: str) -> str:
    try:
        return str(uuid.UUID(text))
    except ValueError:
        raise argparse.ArgumentTypeError(f"not a UUID: {text!r}") from None


# Flags that only mean something with --demo; given without it they are a mistake, not a no-op.
_DEMO_ONLY_FLAGS = {
    "demo_parent_id": "--demo-parent-id",
    "demo_account_id": "--demo-account-id",
    "demo_key_file": "--demo-key-file",
}


def main(argv: list[str] | None = None) -> int:
    parser = build_parser()
    args = parser.parse_args(argv)
    for dest, flag in _DEMO_ONLY_FLAGS.items():
        if getattr(args, dest) is not None and not args.demo:
            parser.error(f"{flag} needs --demo")
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
        log_limit=10_000,  # /_emulator/log shows the latest requests; memory stays bounded
    )
    for rule in rules:
        emulator.ctx.faults.add(rule)

    def ready(bound: Emulator) -> None:
        if args.demo:
            _print_demo(bound, f"{args.public_url or bound.root_url}/api", args)
        # The last line before serving: a signal from now on stops the server (Emulator.serve_forever).
        print(serving_line(bound.base_url), flush=True)

    emulator.serve_forever(ready)  # returns after one SIGINT or SIGTERM, within STOP_TIMEOUT_SECONDS
    return 0


def _print_demo(emulator: Emulator, api_url: str, args: argparse.Namespace) -> None:
    demo = emulator.demo_credentials(args.demo_parent_id, args.demo_account_id)
    key_file = str(Path(args.demo_key_file).absolute()) if args.demo_key_file else None
    if key_file:
        # Written on every start, so a lost key file comes back from the state file's key.
        _write_private_file(Path(key_file), demo.private_key_pem)
    value = json.dumps(demo.airflow_connection(api_url, private_key_path=key_file))
    line = f"export AIRFLOW_CONN_CDATA_DEFAULT={shlex.quote(value)}"
    print(f"Demo parent account: {demo.parent_id}")
    print(f"Demo child account:  {demo.account_id}")
    if key_file:
        print(f"Demo private key:    {key_file}")
    print("Point Airflow's cdata_default at this emulator with:")
    print(line, flush=True)
    if args.demo_env_file:
        _write_private_file(Path(args.demo_env_file), line + "\n")


def _write_private_file(path: Path, text: str) -> None:
    """Write ``text`` to ``path`` with mode 600 from the first byte, replacing the file atomically."""
    path.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp = tempfile.mkstemp(dir=path.parent, prefix=f".{path.name}.")  # mkstemp creates mode 600
    try:
        with os.fdopen(fd, "w", encoding="utf-8") as handle:
            handle.write(text)
        os.replace(tmp, path)
    except BaseException:
        Path(tmp).unlink(missing_ok=True)
        raise


if __name__ == "__main__":
    sys.exit(main())
