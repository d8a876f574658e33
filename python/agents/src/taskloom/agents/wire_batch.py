"""Batching of what the worker sends on its WorkerHub stream: the chunks, results and
credits queued while the previous message was being written go out as one `ResultBatch`
(taskloom.v1.ResultBatch), so a busy worker sends a message per write instead of one per
chunk and per result. Nothing waits for a batch to fill: a lone message goes out as it
is, at once.

The hub applies a batch's chunks, then its results, then its credits. That keeps each
task's order because the worker queues a task's chunks before its result and nothing of
the task after it; a credit may only be applied later than it was queued, never earlier
than a result before it.
"""

from __future__ import annotations

from collections.abc import Iterable, Iterator

from taskloom.v1 import worker_hub_pb2

# A batch stays well under the hub's 4 MiB request limit (WorkerHubService's
# max_request_bytes) and small enough that one large result does not hold up others long.
MAX_BATCH_BYTES = 1 << 20
# The most messages drained from the outbox into one write.
MAX_BATCH_MESSAGES = 1024

_BATCHED = frozenset({"chunk", "result", "credit"})


def batch_requests(
    pending: Iterable[worker_hub_pb2.SessionRequest],
) -> Iterator[worker_hub_pb2.SessionRequest]:
    """The messages of `pending` in order, each run of chunks, results and credits joined
    into one ResultBatch of at most MAX_BATCH_BYTES (a run of one stays as it is)."""
    run: list[worker_hub_pb2.SessionRequest] = []
    size = 0
    for msg in pending:
        if msg.WhichOneof("msg") not in _BATCHED:
            yield from _joined(run)
            run, size = [], 0
            yield msg
            continue
        msg_size = msg.ByteSize()
        if run and size + msg_size > MAX_BATCH_BYTES:
            yield from _joined(run)
            run, size = [], 0
        run.append(msg)
        size += msg_size
    yield from _joined(run)


def _joined(run: list[worker_hub_pb2.SessionRequest]) -> Iterator[worker_hub_pb2.SessionRequest]:
    if len(run) == 1:
        yield run[0]
    elif run:
        batch = worker_hub_pb2.ResultBatch()
        for msg in run:
            kind = msg.WhichOneof("msg")
            if kind == "chunk":
                batch.chunks.append(msg.chunk)
            elif kind == "result":
                batch.results.append(msg.result)
            else:
                batch.credits += msg.credit.credits
        yield worker_hub_pb2.SessionRequest(results=batch)


def unbatched(msg: worker_hub_pb2.SessionRequest) -> Iterator[worker_hub_pb2.SessionRequest]:
    """A message as the hub applies it: a ResultBatch as its chunks, results and one
    credit grant, in that order; any other message as it is (for fakes of the hub)."""
    if msg.WhichOneof("msg") != "results":
        yield msg
        return
    b = msg.results
    for chunk in b.chunks:
        yield worker_hub_pb2.SessionRequest(chunk=chunk)
    for result in b.results:
        yield worker_hub_pb2.SessionRequest(result=result)
    if b.credits:
        yield worker_hub_pb2.SessionRequest(credit=worker_hub_pb2.CreditGrant(credits=b.credits))


def assignments(resp: worker_hub_pb2.SessionResponse) -> list[worker_hub_pb2.Assignment]:
    """The assignments a hub message carries, in order (none for other messages)."""
    kind = resp.WhichOneof("msg")
    if kind == "assignment":
        return [resp.assignment]
    if kind == "assignments":
        return list(resp.assignments.assignments)
    return []
