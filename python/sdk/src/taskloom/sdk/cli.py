"""`taskloom`: a small command-line client of the REST gateway; prints JSON.

taskloom submit echo '{"q": "hi"}' --wait
taskloom get TASK_ID
taskloom events TASK_ID      # one JSON line per event
taskloom agents
"""

from __future__ import annotations

import argparse
import os
import sys
from typing import Any

import orjson

from taskloom.sdk.client import TaskloomClient, TaskloomError


def _print(obj: Any, *, indent: bool = True) -> None:
    option = orjson.OPT_INDENT_2 if indent else 0
    sys.stdout.write(orjson.dumps(obj, option=option).decode() + "\n")
    sys.stdout.flush()


def _json_or_text(raw: str) -> Any:
    """INPUT as JSON when it parses, else as a plain string."""
    try:
        return orjson.loads(raw)
    except orjson.JSONDecodeError:
        return raw


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="taskloom", description=__doc__.splitlines()[0])
    parser.add_argument(
        "--url",
        default=os.environ.get("TASKLOOM_URL", "http://127.0.0.1:8000"),
        help="gateway base URL (env TASKLOOM_URL)",
    )
    parser.add_argument(
        "--api-key", default=os.environ.get("TASKLOOM_API_KEY"), help="env TASKLOOM_API_KEY"
    )
    sub = parser.add_subparsers(dest="command", required=True)

    submit = sub.add_parser("submit", help="submit a task")
    submit.add_argument("agent")
    submit.add_argument("input", help="JSON, or else taken as a string")
    submit.add_argument("--wait", action="store_true", help="wait and print the final task")
    submit.add_argument("--priority", type=int)
    submit.add_argument("--idempotency-key")
    submit.add_argument("--timeout-seconds", type=float)
    submit.add_argument("--max-attempts", type=int)

    sub.add_parser("get", help="show a task").add_argument("id")
    sub.add_parser("cancel", help="cancel a task").add_argument("id")
    sub.add_parser("events", help="stream a task's events, one JSON line each").add_argument("id")
    sub.add_parser("agents", help="list the agents workers offer")
    return parser


def run(args: argparse.Namespace, client: TaskloomClient) -> None:
    if args.command == "submit":
        task = client.submit_task(
            args.agent,
            _json_or_text(args.input),
            priority=args.priority,
            idempotency_key=args.idempotency_key,
            timeout_seconds=args.timeout_seconds,
            max_attempts=args.max_attempts,
        )
        _print(client.wait_task(task["id"]) if args.wait else task)
    elif args.command == "get":
        _print(client.get_task(args.id))
    elif args.command == "cancel":
        _print(client.cancel_task(args.id))
    elif args.command == "events":
        for event in client.stream_events(args.id):
            _print({"event": event.event, "data": event.data}, indent=False)
    elif args.command == "agents":
        _print({"agents": client.list_agents()})


def main(argv: list[str] | None = None) -> int:
    args = build_parser().parse_args(argv)
    with TaskloomClient(args.url, api_key=args.api_key) as client:
        try:
            run(args, client)
        except TaskloomError as err:
            sys.stderr.write(orjson.dumps(err.problem).decode() + "\n")
            return 1
    return 0


if __name__ == "__main__":
    sys.exit(main())
