"""`taskloom`: the command-line client of the REST gateway. Results go to stdout as JSON
(or a table); live views of streams go to stderr (taskloom.sdk.console).

taskloom submit echo '{"q": "hi"}' --wait   # the stream live, then the final task
taskloom get TASK_ID
taskloom tasks list --status running        # a table; --json for one line per task
taskloom workflows run pipeline.yaml --watch
taskloom events TASK_ID      # one JSON line per event
taskloom agents
taskloom loadtest echo hi --tasks 200 --concurrency 20
taskloom keys create --tenant acme   # at the orchestrator, with TASKLOOM_ADMIN_TOKEN
"""

from __future__ import annotations

import argparse
import itertools
import os
import sys
from typing import Any

import anyio
import grpc
import orjson
from pydantic import BaseModel
from rich.console import Console

from taskloom.sdk.async_client import AsyncTaskloomClient
from taskloom.sdk.client import TaskloomClient, TaskloomError
from taskloom.sdk.console import load_table, show_task_stream, show_workflow_stream, tasks_table
from taskloom.sdk.keys import ROLES, KeyAdmin
from taskloom.sdk.loadtest import LoadReport, run_load


def _print(obj: Any, *, indent: bool = True) -> None:
    if isinstance(obj, BaseModel):
        obj = obj.model_dump(mode="json", exclude_none=True)
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
    submit.add_argument(
        "--wait", action="store_true", help="show the stream live, then print the final task"
    )
    submit.add_argument("--priority", type=int)
    submit.add_argument("--idempotency-key")
    submit.add_argument("--timeout-seconds", type=float)
    submit.add_argument("--max-attempts", type=int)

    sub.add_parser("get", help="show a task").add_argument("id")
    sub.add_parser("cancel", help="cancel a task").add_argument("id")
    sub.add_parser("events", help="stream a task's events, one JSON line each").add_argument("id")
    sub.add_parser("agents", help="list the agents workers offer")
    _add_tasks(sub)
    _add_workflows(sub)
    _add_keys(sub)
    load = sub.add_parser(
        "loadtest", help="submit many tasks, follow each to its end, report rate and latency"
    )
    load.add_argument("agent")
    load.add_argument("input", help="JSON, or else taken as a string")
    load.add_argument("--tasks", type=int, default=100)
    load.add_argument("--concurrency", type=int, default=10)
    return parser


def _add_tasks(sub: Any) -> None:
    tasks = sub.add_parser("tasks", help="list tasks").add_subparsers(
        dest="tasks_command", required=True
    )
    listing = tasks.add_parser("list", help="the caller's tasks, newest first, as a table")
    listing.add_argument("--status")
    listing.add_argument("--agent")
    listing.add_argument("--limit", type=int, default=20, help="at most this many (default 20)")
    listing.add_argument("--json", action="store_true", help="one JSON line per task")


def _add_workflows(sub: Any) -> None:
    workflows = sub.add_parser("workflows", help="run workflows").add_subparsers(
        dest="workflows_command", required=True
    )
    run = workflows.add_parser("run", help="start the workflow a YAML (or JSON) file describes")
    run.add_argument("file", type=argparse.FileType("r", encoding="utf-8"))
    run.add_argument(
        "--watch", action="store_true", help="show its steps live, then print the final workflow"
    )


def _add_keys(sub: Any) -> None:
    keys = sub.add_parser(
        "keys",
        help="create, list and revoke API keys (at the orchestrator, as an admin)",
        description="Talks to the orchestrator's gRPC API with an admin credential: "
        "TASKLOOM_ADMIN_TOKEN (or an admin API key in TASKLOOM_API_KEY).",
    )
    keys.add_argument(
        "--orchestrator-addr",
        default=os.environ.get("TASKLOOM_ORCHESTRATOR_ADDR", "127.0.0.1:50051"),
        help="host:port of the orchestrator's gRPC API (env TASKLOOM_ORCHESTRATOR_ADDR)",
    )
    verbs = keys.add_subparsers(dest="keys_command", required=True)
    create = verbs.add_parser("create", help="a new key: prints it with its secret, shown once")
    create.add_argument("--tenant", required=True)
    create.add_argument("--role", choices=sorted(ROLES), default="tenant")
    create.add_argument("--name", default="", help="what the key is for")
    listing = verbs.add_parser("list", help="the keys, one JSON line each")
    listing.add_argument("--tenant", default="", help="only this tenant's")
    listing.add_argument("--all", action="store_true", help="revoked keys too")
    verbs.add_parser("revoke", help="end a key for good").add_argument("id")


def run_keys(args: argparse.Namespace) -> None:
    token = os.environ.get("TASKLOOM_ADMIN_TOKEN") or args.api_key or ""
    with KeyAdmin(args.orchestrator_addr, token) as admin:
        if args.keys_command == "create":
            key, secret = admin.create(args.tenant, args.role, args.name)
            _print({**key, "secret": secret})
        elif args.keys_command == "list":
            for key in admin.list(args.tenant, include_revoked=args.all):
                _print(key, indent=False)
        elif args.keys_command == "revoke":
            _print(admin.revoke(args.id))


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
        if args.wait:
            final = show_task_stream(client.stream_events(task.id), _live())
            _print(final or client.get_task(task.id))
        else:
            _print(task)
    elif args.command == "get":
        _print(client.get_task(args.id))
    elif args.command == "cancel":
        _print(client.cancel_task(args.id))
    elif args.command == "events":
        for event in client.stream_events(args.id):
            _print({"event": event.event, "data": event.data}, indent=False)
    elif args.command == "agents":
        _print({"agents": [a.model_dump(mode="json") for a in client.list_agents()]})
    elif args.command == "tasks":
        tasks = list(
            itertools.islice(client.iter_tasks(status=args.status, agent=args.agent), args.limit)
        )
        if args.json:
            for task in tasks:
                _print(task, indent=False)
        else:
            Console().print(tasks_table(tasks))
    elif args.command == "workflows":
        with args.file:
            started = client.submit_workflow(args.file.read())
        if args.watch:
            finished = show_workflow_stream(client.stream_workflow_events(started.id), _live())
            _print(finished or client.get_workflow(started.id))
        else:
            _print(started)


def run_loadtest(args: argparse.Namespace) -> None:
    async def load() -> LoadReport:
        async with AsyncTaskloomClient(args.url, api_key=args.api_key) as client:
            return await run_load(
                client, args.agent, _json_or_text(args.input), args.tasks, args.concurrency
            )

    report = anyio.run(load)
    _live().print(load_table(report))
    _print(report.as_dict())


def _live() -> Console:
    return Console(stderr=True)


def main(argv: list[str] | None = None) -> int:
    args = build_parser().parse_args(argv)
    if args.command == "keys":
        try:
            run_keys(args)
        except grpc.RpcError as err:
            code = err.code()
            detail = err.details()
            sys.stderr.write(orjson.dumps({"reason": code.name, "detail": detail}).decode() + "\n")
            return 1
        return 0
    if args.command == "loadtest":
        if args.tasks < 1 or args.concurrency < 1:
            sys.stderr.write("--tasks and --concurrency must be at least 1\n")
            return 2
        run_loadtest(args)
        return 0
    with TaskloomClient(args.url, api_key=args.api_key) as client:
        try:
            run(args, client)
        except TaskloomError as err:
            sys.stderr.write(orjson.dumps(err.problem).decode() + "\n")
            return 1
    return 0


if __name__ == "__main__":
    sys.exit(main())
