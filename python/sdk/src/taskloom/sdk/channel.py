"""gRPC channels to the orchestrator that follow its leader.

`TASKLOOM_ORCHESTRATOR_ADDR` is one `host:port` or a comma-separated list of them. The
channel balances round robin over the orchestrators whose `grpc.health.v1` says SERVING for
the Taskloom service called, which only the leader does: a standby says NOT_SERVING (and
answers calls UNAVAILABLE, reason NOT_LEADER). So calls go to the leader, and to the standby
that takes over when it dies. gRPC's own client-side health checking does the choosing; a
server without the health service counts as serving.

One address is resolved by DNS and every record is a candidate (a Compose network alias or
a headless Service naming all the orchestrators). The host names of a list are resolved when
the channel is made (one that does not resolve is left out): the worker makes one per
session, so at each reconnect; the gateway at start. Name one DNS name for all of them where
addresses change.
"""

from __future__ import annotations

import ipaddress
import json
import socket
from collections.abc import Sequence
from typing import Annotated, Any

import grpc
from pydantic import AfterValidator

from taskloom.sdk import tracing
from taskloom.v1 import orchestrator_pb2, worker_hub_pb2

ORCHESTRATOR_SERVICE: str = orchestrator_pb2.DESCRIPTOR.services_by_name[
    "OrchestratorService"
].full_name
WORKER_HUB_SERVICE: str = worker_hub_pb2.DESCRIPTOR.services_by_name["WorkerHubService"].full_name


def addresses(addrs: str) -> list[str]:
    """The `host:port` entries of a comma-separated list."""
    out = [a.strip() for a in addrs.split(",") if a.strip()]
    if not out:
        raise ValueError(f"no orchestrator address in {addrs!r}")
    return out


def _split(addr: str) -> tuple[str, int]:
    host, sep, port = addr.rpartition(":")
    if not sep or not host or not port.isdigit():
        raise ValueError(f"orchestrator address {addr!r} is not host:port")
    return host.strip("[]"), int(port)


def check_addresses(addrs: str) -> str:
    """`addrs` as it is when every entry is `host:port`; ValueError naming the first that
    is not."""
    for entry in addresses(addrs):
        _split(entry)
    return addrs


# The type of a service's `orchestrator_addr` setting: checked when the settings load.
OrchestratorAddresses = Annotated[str, AfterValidator(check_addresses)]


def target(addrs: str) -> str:
    """The gRPC target of the orchestrators at `addrs` (see the module's doc)."""
    entries = addresses(addrs)
    if len(entries) == 1:
        return f"dns:///{entries[0]}"
    by_family: dict[int, list[str]] = {4: [], 6: []}
    families: list[set[int]] = []
    for entry in entries:
        host, port = _split(entry)
        try:
            infos = socket.getaddrinfo(host, port, type=socket.SOCK_STREAM)
        except OSError:
            continue  # not (yet) in DNS: the others may lead
        found: set[int] = set()
        for info in infos:
            ip = ipaddress.ip_address(info[4][0])
            by_family[ip.version].append(f"{ip}:{port}" if ip.version == 4 else f"[{ip}]:{port}")
            found.add(ip.version)
        families.append(found)
    if not families:  # none resolves now: gRPC's resolver keeps trying the first
        return f"dns:///{entries[0]}"
    # gRPC takes a list of one address family: IPv4 if every entry has one, else IPv6.
    for version in (4, 6):
        if all(version in found for found in families):
            return f"ipv{version}:" + ",".join(dict.fromkeys(by_family[version]))
    raise ValueError(f"the orchestrator addresses {addrs!r} share no address family (IPv4 or IPv6)")


def service_config(service: str, *, wait_for_ready: bool = False) -> str:
    """Round robin over the backends whose health check of `service` passes; with
    `wait_for_ready`, calls of `service` wait for one rather than fail at once."""
    config: dict[str, object] = {
        "loadBalancingConfig": [{"round_robin": {}}],
        "healthCheckConfig": {"serviceName": service},
    }
    if wait_for_ready:
        config["methodConfig"] = [{"name": [{"service": service}], "waitForReady": True}]
    return json.dumps(config)


def orchestrator_channel(
    addrs: str,
    service: str = ORCHESTRATOR_SERVICE,
    *,
    wait_for_ready: bool = False,
    options: Sequence[tuple[str, Any]] = (),
) -> grpc.aio.Channel:
    """An insecure channel (a private network) to the leader among the orchestrators at
    `addrs`, for calls of `service`, with gRPC channel `options` besides; its calls are
    traced when tracing is on (taskloom.sdk.tracing)."""
    return grpc.aio.insecure_channel(
        target(addrs),
        options=[
            ("grpc.service_config", service_config(service, wait_for_ready=wait_for_ready)),
            *options,
        ],
        interceptors=tracing.aio_interceptors(),
    )
