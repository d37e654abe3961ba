"""Server schedules: 5-field cron in an IANA time zone, ordered tasks, one idempotent tick.

``tick(now)`` runs every minute (EventBridge → Lambda in AWS, a ``Ticker`` in the dev stack).
Any number of tickers may run at once: a schedule's step runs only for the ticker whose
``claim_schedule_run`` moved ``next_run`` on (a compare-and-set in the store), so each due
step runs exactly once. A crash after the claim and before the step's outcome is written
leaves the lease below, after which the step is tried again (at least once, never twice
concurrently).

Offsets are never slept on (a Lambda must not idle for up to 900 s): tasks run back to
back while their offset is 0; a task with an offset ends the step, and ``next_run`` becomes
that task's due time, so a later tick (within the tick period of it) continues the run.
While a run is in flight ``last_result`` reads ``running: task K of N`` and is the cursor;
the record has no other field for it. The next cron time is computed when the run ends,
so runs of one schedule never overlap (an occurrence that falls inside a run is skipped).
A task succeeds when its command is accepted (sent to the node, or the backup started).
"""

from __future__ import annotations

import logging
import re
import time
from datetime import datetime
from typing import Any, Literal
from zoneinfo import ZoneInfo

from croniter import croniter
from pydantic import BaseModel, ConfigDict, Field, field_validator, model_validator
from stellar_protocol.messages import ConsoleCommand, PowerCommand

from ..auth.jwt import Principal
from ..errors import ApiError
from ..store import Conflict, NotFound, Store, for_principal, get_store
from ..store.records import AuditEntry, Schedule, ScheduleTask, Server
from . import backups, servers

log = logging.getLogger(__name__)

LEASE_S = 300  # how long a claimed step is protected before another tick may retry it
MAX_TASKS = 20
_RUNNING = re.compile(r"^running: task (\d+) of (\d+)$")
_POWER = {"start", "stop", "restart", "kill"}


class TaskBody(BaseModel):
    model_config = ConfigDict(extra="forbid")
    action: Literal["command", "power", "backup"]
    payload: str = Field(default="", max_length=4096)
    offset_s: int = Field(default=0, ge=0, le=900)  # after the previous task
    continue_on_failure: bool = False

    @model_validator(mode="after")
    def _payload(self) -> TaskBody:
        if self.action == "command" and (not self.payload or any(c in self.payload for c in "\r\n\x00")):
            raise ValueError("a command task needs a one-line payload")
        if self.action == "power" and self.payload not in _POWER:
            raise ValueError(f"a power task's payload is one of {sorted(_POWER)}")
        return self


def _check_cron(value: str) -> str:
    value = " ".join(value.split())
    if len(value.split(" ")) != 5 or not croniter.is_valid(value):
        raise ValueError("a five-field cron expression (minute hour day month weekday)")
    return value


def _check_zone(value: str) -> str:
    try:
        ZoneInfo(value)
    except Exception:
        raise ValueError(f"unknown IANA time zone {value!r}") from None
    return value


class ScheduleBody(BaseModel):
    model_config = ConfigDict(extra="forbid")
    name: str = Field(min_length=1, max_length=128)
    cron: str = Field(max_length=128)
    timezone: str = Field(default="UTC", max_length=64)
    enabled: bool = True
    only_when_online: bool = False
    tasks: list[TaskBody] = Field(default_factory=list, max_length=MAX_TASKS)

    @field_validator("cron")
    @classmethod
    def _cron(cls, value: str) -> str:
        return _check_cron(value)

    @field_validator("timezone")
    @classmethod
    def _zone(cls, value: str) -> str:
        return _check_zone(value)


class ScheduleUpdate(BaseModel):
    model_config = ConfigDict(extra="forbid")
    name: str | None = Field(default=None, min_length=1, max_length=128)
    cron: str | None = Field(default=None, max_length=128)
    timezone: str | None = Field(default=None, max_length=64)
    enabled: bool | None = None
    only_when_online: bool | None = None
    tasks: list[TaskBody] | None = Field(default=None, max_length=MAX_TASKS)

    @field_validator("cron")
    @classmethod
    def _cron(cls, value: str | None) -> str | None:
        return None if value is None else _check_cron(value)

    @field_validator("timezone")
    @classmethod
    def _zone(cls, value: str | None) -> str | None:
        return None if value is None else _check_zone(value)


def next_time(cron: str, zone: str, after: float) -> float:
    """The first cron time strictly after ``after``, evaluated in ``zone`` (DST handled by croniter)."""
    start = datetime.fromtimestamp(after, ZoneInfo(zone))
    return float(croniter(cron, start).get_next(datetime).timestamp())


def view(schedule: Schedule) -> dict[str, Any]:
    running = _RUNNING.match(schedule.last_result or "")
    return {"id": schedule.id, "name": schedule.name, "cron": schedule.cron, "timezone": schedule.timezone,
            "enabled": schedule.enabled, "only_when_online": schedule.only_when_online,
            "tasks": [t.model_dump() for t in schedule.tasks], "running": bool(running),
            "next_run": None if running or not schedule.enabled else schedule.next_run,
            "next_task_at": schedule.next_run if running else None,
            "last_run": schedule.last_run, "last_result": schedule.last_result}


def _store(principal: Principal) -> Store:
    return for_principal(principal.user_id, principal.is_admin)


def _audit(store: Store, actor: str, action: str, schedule: Schedule, **details: str) -> None:
    store.add_audit(AuditEntry(actor_id=actor, action=action, server_id=schedule.server_id,
                               target=f"schedule:{schedule.id}", details=details))


def list_for(principal: Principal, server: Server) -> list[Schedule]:
    return sorted(_store(principal).list_schedules(server.id), key=lambda s: s.name)


def get(principal: Principal, server: Server, schedule_id: str) -> Schedule:
    try:
        return _store(principal).get_schedule(server.id, schedule_id)
    except NotFound:
        raise ApiError(404, "not_found", "no such schedule") from None


def create(principal: Principal, server: Server, body: ScheduleBody, now: float | None = None) -> Schedule:
    now = time.time() if now is None else now
    schedule = Schedule(server_id=server.id, name=body.name, cron=body.cron, timezone=body.timezone,
                        enabled=body.enabled, only_when_online=body.only_when_online,
                        tasks=[ScheduleTask(**t.model_dump()) for t in body.tasks],
                        next_run=next_time(body.cron, body.timezone, now))
    store = _store(principal)
    store.put_schedule(schedule)
    _audit(store, principal.user_id, "schedule.create", schedule)
    return schedule


def update(principal: Principal, server: Server, schedule_id: str, body: ScheduleUpdate,
           now: float | None = None) -> Schedule:
    """An edit cancels a run in flight and recomputes the next run from the (new) cron."""
    now = time.time() if now is None else now
    schedule = get(principal, server, schedule_id)
    changes = body.model_dump(exclude_unset=True, exclude_none=True)
    if "tasks" in changes:
        changes["tasks"] = [ScheduleTask(**t) for t in changes["tasks"]]
    for field, value in changes.items():
        setattr(schedule, field, value)
    schedule.next_run = next_time(schedule.cron, schedule.timezone, now)
    if _RUNNING.match(schedule.last_result or ""):
        schedule.last_result = "cancelled: the schedule was edited"
    store = _store(principal)
    store.put_schedule(schedule)
    _audit(store, principal.user_id, "schedule.update", schedule)
    return schedule


def delete(principal: Principal, server: Server, schedule_id: str) -> None:
    schedule = get(principal, server, schedule_id)
    store = _store(principal)
    store.delete_schedule(schedule)
    _audit(store, principal.user_id, "schedule.delete", schedule)


def run_now(principal: Principal, server: Server, schedule_id: str, now: float | None = None) -> Schedule:
    """Make the schedule due now and run its first step in this request (through the same claim
    as the tickers, so a ticker that sees it due meanwhile cannot run it a second time)."""
    now = time.time() if now is None else now
    schedule = get(principal, server, schedule_id)
    if not schedule.enabled:
        raise ApiError(409, "disabled", "enable the schedule before running it")
    if _RUNNING.match(schedule.last_result or ""):
        raise ApiError(409, "running", "the schedule is running already")
    store = _store(principal)
    schedule.next_run = now
    store.put_schedule(schedule)
    _audit(store, principal.user_id, "schedule.run", schedule)
    _step(get_store().as_admin("schedule run now"), schedule, now)
    return get(principal, server, schedule_id)


# ---- the tick ---------------------------------------------------------------------------

def tick(now: float | None = None) -> dict[str, int]:
    """Run every due step once across all tickers; returns how many this ticker ran."""
    now = time.time() if now is None else now
    store = get_store().as_admin("schedule ticker")
    ran = 0
    for schedule in store.due_schedules(now):
        try:
            ran += _step(store, schedule, now)
        except Exception:  # one broken schedule never stops the others
            log.exception("schedule %s of server %s failed", schedule.id, schedule.server_id)
    return {"ran": ran}


def _run_task(store: Store, server: Server, schedule: Schedule, task: ScheduleTask) -> None:
    """Raise ApiError (or any error) when the task cannot be carried out."""
    if server.suspended:
        raise ApiError(409, "suspended", "the server is suspended")
    if task.action == "command":
        if server.status not in {"starting", "running"}:
            raise ApiError(409, "bad_state", f"the server is {server.status}")
        servers.send(server, ConsoleCommand(server_id=server.id, line=task.payload))
    elif task.action == "power":
        servers.send(server, PowerCommand(server_id=server.id, action=task.payload))  # type: ignore[arg-type]
    elif task.action == "backup":
        backups.create(None, server, backups.CreateBody(name=task.payload or f"schedule {schedule.name}"),
                       actor="scheduler")
    else:
        raise ApiError(422, "invalid", f"unknown task action {task.action}")


def _step(store: Store, schedule: Schedule, now: float) -> int:
    """Claim the due step and run it; 0 when another ticker has it (or it was edited)."""
    running = _RUNNING.match(schedule.last_result or "")
    first = int(running.group(1)) - 1 if running else 0
    if not store.claim_schedule_run(schedule, now + LEASE_S, now):
        return 0
    try:
        server = store.get_server(schedule.server_id)
    except NotFound:
        return 1
    outcome, index = "ok", first
    tasks = schedule.tasks
    if not running and tasks and tasks[0].offset_s > 0:
        return _finish(store, schedule, now, f"running: task 1 of {len(tasks)}", now + tasks[0].offset_s)
    if not running and schedule.only_when_online and server.status != "running":
        return _finish(store, schedule, now, f"skipped: the server was {server.status}", None)
    failed: list[str] = []
    while index < len(tasks):
        task = tasks[index]
        try:
            _run_task(store, server, schedule, task)
            _audit(store, "scheduler", f"schedule.task.{task.action}", schedule, task=str(index + 1))
        except Exception as exc:
            message = exc.message if isinstance(exc, ApiError) else str(exc)
            failed.append(f"task {index + 1} ({task.action}): {message}"[:300])
            if not task.continue_on_failure:
                break
        index += 1
        if index < len(tasks) and tasks[index].offset_s > 0:
            return _finish(store, schedule, now, f"running: task {index + 1} of {len(tasks)}",
                           now + tasks[index].offset_s)
    if failed:
        outcome = "failed: " + "; ".join(failed)
    return _finish(store, schedule, now, outcome[:1000], None)


def _finish(store: Store, schedule: Schedule, now: float, result: str, due: float | None) -> int:
    """Write the step's outcome and the next due time (a pending task's, else the cron's)."""
    for _ in range(3):
        try:
            fresh = store.get_schedule(schedule.server_id, schedule.id)
        except NotFound:
            return 1
        if fresh.next_run != schedule.next_run:  # edited meanwhile: the edit wins
            return 1
        fresh.last_result = result
        fresh.next_run = due if due is not None else next_time(fresh.cron, fresh.timezone, now)
        try:
            store.put_schedule(fresh)
            return 1
        except Conflict:
            continue
    log.warning("could not record the outcome of schedule %s", schedule.id)
    return 1
