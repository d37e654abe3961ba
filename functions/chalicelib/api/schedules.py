"""Schedule routes: cron + time zone, ordered tasks, run now; the tick runs them (services.schedules)."""

from __future__ import annotations

from typing import Any

from chalice import Blueprint

from ..services import schedules as service
from ..services.schedules import ScheduleBody, ScheduleUpdate
from .routing import Context, api_route

bp = Blueprint(__name__)
P = "/servers/{server_id}/schedules"


def _server(ctx: Context) -> Any:
    assert ctx.server is not None
    return ctx.server


@api_route(bp, P, "GET", summary="The server's schedules with last and next run", permission="schedule.read")
def list_schedules(ctx: Context, server_id: str) -> dict[str, Any]:
    return {"schedules": [service.view(s) for s in service.list_for(ctx.user, _server(ctx))]}


@api_route(bp, P, "POST", summary="Create a schedule (5-field cron, IANA time zone, tasks)", body=ScheduleBody,
           permission="schedule.create", status=201)
def create_schedule(ctx: Context, server_id: str) -> dict[str, Any]:
    return service.view(service.create(ctx.user, _server(ctx), ctx.body))


@api_route(bp, f"{P}/{{schedule_id}}", "PATCH", summary="Edit a schedule (cancels a run in flight)",
           body=ScheduleUpdate, permission="schedule.update")
def update_schedule(ctx: Context, server_id: str, schedule_id: str) -> dict[str, Any]:
    return service.view(service.update(ctx.user, _server(ctx), schedule_id, ctx.body))


@api_route(bp, f"{P}/{{schedule_id}}/run", "POST", summary="Run a schedule now", permission="schedule.update")
def run_schedule(ctx: Context, server_id: str, schedule_id: str) -> dict[str, Any]:
    return service.view(service.run_now(ctx.user, _server(ctx), schedule_id))


@api_route(bp, f"{P}/{{schedule_id}}", "DELETE", summary="Delete a schedule", permission="schedule.delete")
def delete_schedule(ctx: Context, server_id: str, schedule_id: str) -> dict[str, Any]:
    service.delete(ctx.user, _server(ctx), schedule_id)
    return {"deleted": schedule_id}
