"""Server use cases: create (placement, ports, install), power, console input, delete, and the
lifecycle operations that change what the node runs (startup variables, image, blueprint, ports,
reinstall). Those store the change first, then send the node the whole new spec (``server.update``):
the agent keeps it for the next start, so a running game is never restarted behind the user's back."""

from __future__ import annotations

import logging
import re
import secrets
from typing import Any

from pydantic import BaseModel, ConfigDict, Field
from stellar_protocol.blueprint import Blueprint, BlueprintError
from stellar_protocol.messages import (
    ConsoleCommand,
    DeleteCommand,
    InstallCommand,
    Limits,
    Port,
    PowerAction,
    PowerCommand,
    ReinstallCommand,
    ServerSpec,
    UpdateCommand,
)

from ..auth.jwt import Principal
from ..broker.publisher import BrokerUnavailable
from ..errors import ApiError, invalid, not_found
from ..store import Conflict, NotFound, for_principal, get_store
from ..store.records import Allocation, AuditEntry, Node, Server, new_id
from . import messaging, nodes
from .blueprints import catalogue

log = logging.getLogger(__name__)
_NAME = re.compile(r"^[^\x00-\x1f\x7f]{1,64}$")
PLACEMENT_RETRIES = 5
ALLOCATION_RETRIES = 10  # every state event bumps the server's version too


class CreateServer(BaseModel):
    model_config = ConfigDict(extra="forbid")

    name: str = Field(min_length=1, max_length=64, pattern=_NAME.pattern)
    blueprint_id: str = Field(min_length=1, max_length=64)
    location_id: str = Field(min_length=1, max_length=64)
    variables: dict[str, str] = Field(default_factory=dict)
    memory_mb: int | None = Field(default=None, ge=16, le=1_048_576)
    image: str | None = Field(default=None, max_length=64)


class PowerBody(BaseModel):
    model_config = ConfigDict(extra="forbid")

    action: PowerAction


class CommandBody(BaseModel):
    model_config = ConfigDict(extra="forbid")

    line: str = Field(min_length=1, max_length=4096, pattern=r"^[^\r\n\x00]*$")


def view(server: Server) -> dict[str, object]:
    return {
        "id": server.id, "name": server.name, "status": server.status, "status_detail": server.status_detail,
        "node_id": server.node_id, "blueprint_id": server.blueprint_id, "location_id": server.location_id,
        "image": server.image, "memory_mb": server.memory_mb, "owner_id": server.owner_id,
        "ports": [p.model_dump() for p in server.ports], "created_at": server.created_at,
        "description": server.description, "suspended": server.suspended,
    }


def _check_variables(bp: Blueprint, given: dict[str, str]) -> dict[str, str]:
    """Every variable (given or defaulted) against its rules, with one message per field."""
    errors: dict[str, str] = {}
    by_env = {v.env: v for v in bp.variables}
    for env in given:
        if env not in by_env:
            errors[f"variables.{env}"] = f"{env}: not a variable of blueprint {bp.id}"
        elif not by_env[env].user_editable:
            errors[f"variables.{env}"] = f"{env}: not editable"
    for var in bp.variables:
        if f"variables.{var.env}" in errors:
            continue
        try:
            var.check(str(given.get(var.env, var.default)))
        except BlueprintError as exc:
            errors[f"variables.{var.env}"] = str(exc)
    if errors:
        raise invalid(errors, "some variables are not valid")
    return bp.resolve_variables(given)


def _free(node: Node, servers: list[Server]) -> tuple[int, int, int]:
    """Free (memory, disk, CPU) with the node's over-allocation applied to each."""
    factor = 100 + node.overallocate_percent

    def room(capacity: int, used: int) -> int:
        return capacity * factor // 100 - used

    return (room(node.memory_mb, sum(s.memory_mb for s in servers)),
            room(node.disk_mb, sum(s.disk_mb for s in servers)),
            room(node.cpu_percent, sum(s.cpu_percent for s in servers)))


def _free_ports(node: Node) -> list[int]:
    taken = {a.port for a in get_store().as_admin("placement").allocations(node.id)}
    return [p for p in node.port_pool() if p not in taken]


def _place(location_id: str, limits: Limits, port_count: int) -> tuple[Node, list[int]]:
    """The online node with the most free memory that fits the limits and has the ports."""
    store = get_store().as_admin("placement")  # capacity counts every tenant's servers
    best: tuple[int, Node, list[int]] | None = None
    short_of_ports = False
    for node in store.list_nodes(location_id):
        if nodes.effective_status(node) != "online":
            continue
        memory, disk, cpu = _free(node, list(store.list_servers_on_node(node.id)))
        if memory < limits.memory_mb or disk < limits.disk_mb or cpu < limits.cpu_percent:
            continue
        ports = _free_ports(node)
        if len(ports) < port_count:
            short_of_ports = True
            continue
        if best is None or memory > best[0]:
            best = (memory, node, ports[:port_count])
    if best is None:
        if short_of_ports:
            raise ApiError(503, "no_ports", "no online node in this location has enough free ports")
        raise ApiError(503, "no_capacity", "no online node in this location has room for this server")
    return best[1], best[2]


def create(principal: Principal, body: CreateServer, source_ip: str | None) -> Server:
    bp = catalogue().get(body.blueprint_id)
    if bp is None:
        raise invalid({"blueprint_id": "unknown blueprint"})
    variables = _check_variables(bp, body.variables)
    image_choice = body.image or next(iter(bp.images))
    if image_choice not in bp.images:
        raise invalid({"image": f"choose one of {', '.join(bp.images)}"})
    store = for_principal(principal.user_id, principal.is_admin)
    try:
        store.get_location(body.location_id)
    except NotFound:
        raise invalid({"location_id": "unknown location"}) from None
    memory = body.memory_mb or bp.limits.memory_mb
    limits = Limits(memory_mb=memory, cpu_percent=bp.limits.cpu_percent, disk_mb=bp.limits.disk_mb,
                    pids=bp.limits.pids)
    server_id = new_id()
    for _attempt in range(PLACEMENT_RETRIES):
        node, picked = _place(body.location_id, limits, bp.ports)
        ports = [Port(ip=node.address, port=p) for p in picked]
        server = Server(id=server_id, name=body.name, owner_id=principal.user_id, node_id=node.id,
                        location_id=body.location_id, blueprint_id=bp.id, image=bp.images[image_choice],
                        variables=variables, memory_mb=memory, disk_mb=limits.disk_mb,
                        cpu_percent=limits.cpu_percent, ports=ports)
        allocs = [Allocation(node_id=node.id, ip=p.ip, port=p.port, server_id=server_id) for p in ports]
        audit = AuditEntry(actor_id=principal.user_id, action="server.create", server_id=server_id,
                           source_ip=source_ip, details={"blueprint": bp.id, "node": node.id})
        try:
            store.create_server(server, allocs, audit)
            break
        except Conflict:
            continue  # another create took one of these ports: place again
    else:
        raise ApiError(409, "conflict", "could not reserve ports for the server, try again")
    spec = server_spec(server, bp)
    try:
        messaging.send_command(node.id, InstallCommand(spec=spec))
    except BrokerUnavailable as exc:
        log.error("install of %s not sent: %s", server_id, exc)
        server.status, server.status_detail = "install_failed", "the node could not be reached"
        store.update_server(server)
    return server


_POWER_ALLOWED: dict[str, set[str]] = {
    "start": {"offline"},
    "stop": {"starting", "running"},
    "restart": {"offline", "starting", "running"},
    "kill": {"starting", "running", "stopping"},
}


def power(principal: Principal, server: Server, action: PowerAction, source_ip: str | None) -> str:
    if server.suspended:
        raise ApiError(409, "suspended", "the server is suspended")
    if server.status not in _POWER_ALLOWED[action]:
        raise ApiError(409, "bad_state", f"cannot {action} a server that is {server.status}")
    command = PowerCommand(server_id=server.id, action=action)
    command_id = send(server, command)
    for_principal(principal.user_id, principal.is_admin).add_audit(
        AuditEntry(actor_id=principal.user_id, action=f"server.power.{action}",
                                     server_id=server.id, source_ip=source_ip))
    return command_id


def console_command(principal: Principal, server: Server, line: str, source_ip: str | None) -> str:
    if server.suspended:
        raise ApiError(409, "suspended", "the server is suspended")
    if server.status not in {"starting", "running"}:
        raise ApiError(409, "bad_state", f"the server is {server.status}; start it first")
    command_id = send(server, ConsoleCommand(server_id=server.id, line=line))
    for_principal(principal.user_id, principal.is_admin).add_audit(
        AuditEntry(actor_id=principal.user_id, action="server.console.command",
                                     server_id=server.id, source_ip=source_ip, details={"line": line[:200]}))
    return command_id


def delete(principal: Principal, server: Server, source_ip: str | None) -> None:
    """Free the ports and forget the server now; the node removes its files now or, if it is
    away, when it comes back (the id waits in ``node.pending_deletes`` for reconciliation)."""
    try:
        nodes.mutate_node(server.node_id, lambda n: n.pending_deletes.append(server.id)
                          if server.id not in n.pending_deletes else None, "server deletion")
    except ApiError as exc:
        if exc.status != 404:
            raise
    try:
        messaging.send_command(server.node_id, DeleteCommand(server_id=server.id))
    except BrokerUnavailable as exc:
        log.warning("delete of %s not sent now (%s): finished when the node reconnects", server.id, exc)
    store = for_principal(principal.user_id, principal.is_admin)
    audit = AuditEntry(actor_id=principal.user_id, action="server.delete", server_id=server.id, source_ip=source_ip)
    for _attempt in range(PLACEMENT_RETRIES):
        try:
            store.delete_server(server, audit)
            return
        except Conflict:  # the agent's state events bump the version: re-read and retry
            try:
                server = store.get_server(server.id)
            except NotFound:
                return  # deleted meanwhile: delete is idempotent
    raise ApiError(409, "conflict", "the server kept changing; try again")


class SettingsBody(BaseModel):
    model_config = ConfigDict(extra="forbid")

    name: str | None = Field(default=None, min_length=1, max_length=64, pattern=_NAME.pattern)
    description: str | None = Field(default=None, max_length=1024)


def _modify(principal: Principal, server: Server, change: Any, action: str, source_ip: str | None,
            details: dict[str, str] | None = None) -> Server:
    """Compare-and-set on the server (agent states bump its version: re-read and retry), audited."""
    store = for_principal(principal.user_id, principal.is_admin)
    for _attempt in range(PLACEMENT_RETRIES):
        change(server)
        try:
            store.update_server(server)
            break
        except Conflict:
            server = store.get_server(server.id)
    else:
        raise ApiError(409, "conflict", "the server kept changing; try again")
    store.add_audit(AuditEntry(actor_id=principal.user_id, action=action, server_id=server.id,
                               source_ip=source_ip, details=details or {}))
    return server


def update_settings(principal: Principal, server: Server, body: SettingsBody, source_ip: str | None) -> Server:
    def change(s: Server) -> None:
        if body.name is not None:
            s.name = body.name
        if body.description is not None:
            s.description = body.description

    return _modify(principal, server, change, "server.settings", source_ip,
                   {k: v for k, v in body.model_dump(exclude_none=True).items()})


def set_suspended(principal: Principal, server: Server, suspended: bool, source_ip: str | None) -> Server:
    """Suspending stops the server (kill: it must not keep serving) and refuses power until lifted."""

    def change(s: Server) -> None:
        s.suspended = suspended

    server = _modify(principal, server, change, "server.suspend" if suspended else "server.unsuspend", source_ip)
    if suspended and server.status in {"starting", "running", "stopping"}:
        try:
            messaging.send_command(server.node_id, PowerCommand(server_id=server.id, action="kill"))
        except BrokerUnavailable as exc:  # reconciliation stops it when the node is back
            log.warning("suspension stop of %s not sent: %s", server.id, exc)
    return server


def send(server: Server, command: object) -> str:
    try:
        return messaging.send_command(server.node_id, command)
    except BrokerUnavailable:
        raise ApiError(503, "node_unreachable", "the server's node cannot be reached right now") from None


# ---- lifecycle operations (issue 7) ---------------------------------------------------------


class StartupBody(BaseModel):
    model_config = ConfigDict(extra="forbid")

    variables: dict[str, str] = Field(min_length=1, max_length=128)


class ImageBody(BaseModel):
    model_config = ConfigDict(extra="forbid")

    image: str = Field(min_length=1, max_length=256, description="a display name or reference of the blueprint")


class SwitchBlueprintBody(BaseModel):
    model_config = ConfigDict(extra="forbid")

    blueprint_id: str = Field(min_length=1, max_length=64)
    variables: dict[str, str] = Field(default_factory=dict)
    image: str | None = Field(default=None, max_length=256)


class AddAllocationBody(BaseModel):
    model_config = ConfigDict(extra="forbid")

    port: int | None = Field(default=None, ge=1, le=65535, description="a free port of the node; any if absent")


def blueprint_of(server: Server) -> Blueprint:
    bp = catalogue().get(server.blueprint_id)
    if bp is None:
        raise ApiError(409, "blueprint_gone", f"blueprint {server.blueprint_id} is no longer in the catalogue")
    return bp


def server_spec(server: Server, bp: Blueprint) -> ServerSpec:
    """What the node runs, rebuilt from the stored server; non-editable variables keep their defaults."""
    editable = {v.env for v in bp.variables if v.user_editable}
    limits = Limits(memory_mb=server.memory_mb, cpu_percent=server.cpu_percent, disk_mb=server.disk_mb,
                    pids=bp.limits.pids)
    return bp.to_spec(server.id, {k: v for k, v in server.variables.items() if k in editable}, limits=limits,
                      ports=server.ports, image=server.image)


def _push_spec(server: Server, bp: Blueprint) -> None:
    """The stored change is the truth; a broker outage is logged (the node keeps its old spec)."""
    try:
        messaging.send_command(server.node_id, UpdateCommand(spec=server_spec(server, bp)))
    except BrokerUnavailable as exc:
        log.error("spec update of %s not sent: %s", server.id, exc)


def _image_ref(bp: Blueprint, choice: str | None) -> str:
    if choice is None:
        return bp.default_image
    if choice in bp.images:
        return bp.images[choice]
    if choice in bp.images.values():
        return choice
    raise invalid({"image": f"choose one of {', '.join(bp.images)}"})


def startup_view(server: Server) -> dict[str, Any]:
    """Variables users may see, with the server's values and the rules the API enforces."""
    bp = blueprint_of(server)
    return {
        "blueprint_id": bp.id, "image": server.image, "images": dict(bp.images), "startup": bp.startup,
        "variables": [
            {"name": v.name, "description": v.description, "env": v.env, "default": v.default,
             "value": server.variables.get(v.env, v.default), "editable": v.user_editable,
             "max_length": v.max_length, "rules": v.rules.model_dump(mode="json", by_alias=True, exclude_defaults=True)}
            for v in bp.variables if v.user_viewable
        ],
    }


def update_startup(principal: Principal, server: Server, body: StartupBody, source_ip: str | None) -> Server:
    bp = blueprint_of(server)
    by_env = {v.env: v for v in bp.variables if v.user_viewable}
    errors: dict[str, str] = {}
    for env, value in body.variables.items():
        var = by_env.get(env)
        if var is None:
            errors[f"variables.{env}"] = f"{env}: not a variable of blueprint {bp.id}"
        elif not var.user_editable:
            errors[f"variables.{env}"] = f"{env}: not editable"
        else:
            try:
                var.check(value)
            except BlueprintError as exc:
                errors[f"variables.{env}"] = str(exc)
    if errors:
        raise invalid(errors, "some variables are not valid")

    def change(s: Server) -> None:
        if s.blueprint_id != bp.id:  # switched meanwhile: these values were checked against the old one
            raise ApiError(409, "conflict", "the server's blueprint changed; reload and try again")
        s.variables = {**s.variables, **body.variables}

    server = _modify(principal, server, change, "server.startup", source_ip,
                     {"variables": ",".join(sorted(body.variables))})  # names only: values may be secrets
    _push_spec(server, bp)
    return server


def set_image(principal: Principal, server: Server, body: ImageBody, source_ip: str | None) -> Server:
    bp = blueprint_of(server)
    ref = _image_ref(bp, body.image)

    def change(s: Server) -> None:
        if s.blueprint_id != bp.id:
            raise ApiError(409, "conflict", "the server's blueprint changed; reload and try again")
        s.image = ref

    server = _modify(principal, server, change, "server.image", source_ip, {"image": ref})
    _push_spec(server, bp)
    return server


def reinstall(principal: Principal, server: Server, source_ip: str | None) -> str:
    """The agent stops the server if it runs, re-runs the install script and leaves it offline."""
    if server.suspended:
        raise ApiError(409, "suspended", "the server is suspended")
    command_id = send(server, ReinstallCommand(server_id=server.id))
    for_principal(principal.user_id, principal.is_admin).add_audit(
        AuditEntry(actor_id=principal.user_id, action="server.reinstall", server_id=server.id, source_ip=source_ip))
    return command_id


def switch_blueprint(principal: Principal, server: Server, body: SwitchBlueprintBody,
                     source_ip: str | None) -> Server:
    """Same id, ports, limits and files; new blueprint, variables and image; then a reinstall."""
    if server.suspended:
        raise ApiError(409, "suspended", "the server is suspended")
    bp = catalogue().get(body.blueprint_id)
    if bp is None:
        raise invalid({"blueprint_id": "unknown blueprint"})
    variables = _check_variables(bp, body.variables)
    ref = _image_ref(bp, body.image)
    if bp.ports > len(server.ports):
        raise invalid({"blueprint_id": f"{bp.id} needs {bp.ports} ports and the server has {len(server.ports)}; "
                                       "add allocations first"})
    previous = server.blueprint_id

    def change(s: Server) -> None:
        s.blueprint_id, s.variables, s.image = bp.id, variables, ref

    server = _modify(principal, server, change, "server.blueprint", source_ip, {"from": previous, "to": bp.id})
    # One publisher, one topic, QoS 1: the node gets them in this order and queues both on the server.
    send(server, UpdateCommand(spec=server_spec(server, bp)))
    send(server, ReinstallCommand(server_id=server.id))
    return server


def allocations_view(server: Server) -> list[dict[str, Any]]:
    return [{**p.model_dump(), "primary": i == 0} for i, p in enumerate(server.ports)]


def add_allocation(principal: Principal, server: Server, body: AddAllocationBody, source_ip: str | None) -> Server:
    """A free port of the server's node; claimed by a conditional create, so never given twice."""
    bp = blueprint_of(server)
    try:
        node = get_store().as_admin("allocation").get_node(server.node_id)
    except NotFound:
        raise ApiError(409, "node_gone", "the server's node no longer exists") from None
    if body.port is not None and body.port not in node.port_pool():
        raise invalid({"port": "not in the node's port ranges"})
    store = for_principal(principal.user_id, principal.is_admin)
    for _attempt in range(ALLOCATION_RETRIES):
        if len(server.ports) >= 64:
            raise ApiError(409, "too_many", "a server holds at most 64 ports")
        free = _free_ports(node)
        if body.port is not None and body.port not in free:
            raise ApiError(409, "port_taken", f"port {body.port} is already allocated")
        if not free:
            raise ApiError(409, "no_ports", "the server's node has no free ports")
        # a random free port: concurrent adds rarely pick the same one, so rarely retry
        port = body.port if body.port is not None else secrets.choice(free)
        alloc = Allocation(node_id=node.id, ip=node.address, port=port, server_id=server.id)
        server.ports = [*server.ports, Port(ip=node.address, port=port)]
        audit = AuditEntry(actor_id=principal.user_id, action="server.allocation.create", server_id=server.id,
                           source_ip=source_ip, details={"port": str(port)})
        try:
            store.change_allocations(server, [alloc], [], audit)
            break
        except Conflict:  # the port went to someone else, or the server changed: re-read and retry
            server = store.get_server(server.id)
    else:
        raise ApiError(409, "conflict", "could not reserve a port, try again")
    _push_spec(server, bp)
    return server


def remove_allocation(principal: Principal, server: Server, port: int, source_ip: str | None) -> Server:
    """Frees a non-primary port; refused when the blueprint needs the ports that would remain."""
    bp = blueprint_of(server)
    store = for_principal(principal.user_id, principal.is_admin)
    for _attempt in range(PLACEMENT_RETRIES):
        held = [p for p in server.ports if p.port == port]
        if not held:
            raise not_found("allocation")
        if server.ports[0].port == port:
            raise ApiError(409, "primary", "the primary port cannot be removed")
        if len(server.ports) - 1 < bp.ports:
            raise ApiError(409, "needed", f"blueprint {bp.id} needs {bp.ports} ports")
        server.ports = [p for p in server.ports if p.port != port]
        alloc = Allocation(node_id=server.node_id, ip=held[0].ip, port=port, server_id=server.id)
        audit = AuditEntry(actor_id=principal.user_id, action="server.allocation.delete", server_id=server.id,
                           source_ip=source_ip, details={"port": str(port)})
        try:
            store.change_allocations(server, [], [alloc], audit)
            break
        except Conflict:
            server = store.get_server(server.id)
    else:
        raise ApiError(409, "conflict", "the server kept changing; try again")
    _push_spec(server, bp)
    return server
