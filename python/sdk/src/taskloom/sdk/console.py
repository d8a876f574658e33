"""What the `taskloom` CLI shows people, with rich: a task's stream as it happens (answer
text inline, thoughts, tool calls and status changes dimmed), a workflow's steps as they
move, pages of tasks as a table. Scripts read stdout, which carries only JSON or the table;
the live view goes to stderr."""

from __future__ import annotations

from collections.abc import Iterable

from rich.console import Console
from rich.table import Table
from rich.text import Text

from taskloom.sdk.events import Event
from taskloom.sdk.loadtest import LoadReport
from taskloom.sdk.models import Task, Workflow

STATUS_STYLES = {
    "succeeded": "green",
    "failed": "red",
    "timed_out": "red",
    "cancelled": "yellow",
    "running": "cyan",
    "queued": "blue",
}


def status_text(status: str | None) -> Text:
    name = status or "-"
    return Text(name, style=STATUS_STYLES.get(name, ""))


def show_task_stream(events: Iterable[Event], console: Console) -> Task | None:
    """Print the task's events as they arrive; the final task, when the stream got there."""
    for event in events:
        if event.event == "status":
            console.print(Text.assemble("● ", status_text(event.data.get("status"))))
        elif event.event == "chunk":
            _show_chunk(event.data, console)
        elif event.event == "done":
            task = event.task()
            console.print(Text.assemble("\n✔ ", task.id, " ", status_text(task.status)))
            return task
    return None


def _show_chunk(chunk: dict[str, object], console: Console) -> None:
    kind = chunk.get("kind") or "text"
    if kind == "text":
        console.print(str(chunk.get("text", "")), end=" ", markup=False, highlight=False)
    elif kind == "tool_call":
        data = chunk.get("data") or {}
        name = data.get("name") if isinstance(data, dict) else ""
        console.print(Text(f"\n→ tool {name}", style="magenta"))
    else:
        console.print(Text(f"\n· {kind}: {chunk.get('text') or chunk.get('data')}", style="dim"))


def show_workflow_stream(events: Iterable[Event], console: Console) -> Workflow | None:
    """Print each step's events as the workflow moves; the final workflow at its end (with
    the steps whose status was not streamed, as when the watch began after they ended)."""
    shown_status: set[str] = set()
    for event in events:
        if event.event == "status":
            console.print(Text.assemble("● workflow ", status_text(event.data.get("status"))))
        elif event.event == "step":
            step, what = event.data.get("step_id", "?"), event.data.get("event", "")
            data = event.data.get("data") or {}
            shown = (
                status_text(data.get("status"))
                if what == "status"
                else Text(f"{what} {data.get('text', '')}".rstrip(), style="dim")
            )
            if what == "status":
                shown_status.add(str(step))
            console.print(Text.assemble("  step ", Text(str(step), style="bold"), " ", shown))
        elif event.event == "done":
            workflow = event.workflow()
            for state in workflow.steps:
                if state.step_id not in shown_status:
                    console.print(
                        Text.assemble(
                            "  step ",
                            Text(state.step_id, style="bold"),
                            " ",
                            status_text(state.status),
                        )
                    )
            console.print(Text.assemble("✔ ", workflow.id, " ", status_text(workflow.status)))
            return workflow
    return None


def tasks_table(tasks: Iterable[Task]) -> Table:
    table = Table("id", "agent", "status", "tenant", "created", box=None)
    for task in tasks:
        created = task.created_at.isoformat(timespec="seconds") if task.created_at else ""
        table.add_row(task.id, task.agent, status_text(task.status), task.tenant, created)
    return table


def load_table(report: LoadReport) -> Table:
    table = Table("measure", "value", box=None, title="taskloom loadtest")
    for name, value in report.as_dict().items():
        table.add_row(name.replace("_", " "), str(value))
    return table
