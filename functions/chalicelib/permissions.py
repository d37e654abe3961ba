"""The permission catalogue: every server permission node, in one place.

Routes name the node they require (see ``api.routing``), the subuser editor lists them
from here, and tests check that routes and catalogue agree. Starts from Pterodactyl's
40 keys and Pelican's 44 and splits what hosts asked to have separately (kill, stats,
console history). Server owners and root admins hold every node.
"""

from __future__ import annotations

from dataclasses import dataclass


@dataclass(frozen=True)
class Permission:
    key: str
    description: str
    danger: bool = False

    @property
    def group(self) -> str:
        return self.key.split(".", 1)[0]


_CATALOGUE: tuple[Permission, ...] = (
    # control
    Permission("control.console", "Send commands to the server console"),
    Permission("control.start", "Start the server"),
    Permission("control.stop", "Stop the server"),
    Permission("control.restart", "Restart the server (can start a stopped server)"),
    Permission("control.kill", "Kill the server process without a clean shutdown", danger=True),
    # console and stats
    Permission("console.read", "Watch the live console"),
    Permission("console.history", "See console lines printed before connecting"),
    Permission("stats.read", "See live CPU, memory and network use"),
    # files
    Permission("file.read", "List directories"),
    Permission("file.read-content", "Read and download files", danger=True),
    Permission("file.create", "Create files and directories, upload"),
    Permission("file.update", "Edit, rename and move files"),
    Permission("file.delete", "Delete files"),
    Permission("file.archive", "Compress and decompress archives"),
    Permission("file.chmod", "Change file modes"),
    Permission("file.sftp", "Connect over SFTP"),
    # backups
    Permission("backup.read", "List backups"),
    Permission("backup.create", "Create backups"),
    Permission("backup.delete", "Delete unlocked backups"),
    Permission("backup.download", "Download backups (all server files)", danger=True),
    Permission("backup.restore", "Restore a backup over the current files", danger=True),
    Permission("backup.lock", "Lock and unlock backups"),
    # schedules
    Permission("schedule.read", "View schedules"),
    Permission("schedule.create", "Create schedules"),
    Permission("schedule.update", "Edit schedules and run them now"),
    Permission("schedule.delete", "Delete schedules"),
    # subusers
    Permission("user.read", "View subusers"),
    Permission("user.create", "Invite subusers"),
    Permission("user.update", "Change subusers' permissions"),
    Permission("user.delete", "Remove subusers"),
    # startup
    Permission("startup.read", "View startup variables"),
    Permission("startup.update", "Change startup variables"),
    Permission("startup.docker-image", "Choose among the blueprint's images"),
    Permission("startup.blueprint", "Switch the server to another blueprint", danger=True),
    # settings
    Permission("settings.read", "View server details"),
    Permission("settings.rename", "Rename the server and change its description"),
    Permission("settings.reinstall", "Reinstall the server", danger=True),
    Permission("settings.delete", "Delete the server", danger=True),
    # allocations
    Permission("allocation.read", "View the server's ports"),
    Permission("allocation.create", "Add ports"),
    Permission("allocation.update", "Change the primary port and port notes"),
    Permission("allocation.delete", "Remove ports"),
    # activity
    Permission("activity.read", "Read the server's activity log"),
    # databases
    Permission("database.read", "List databases"),
    Permission("database.create", "Create databases"),
    Permission("database.update", "Rotate database passwords"),
    Permission("database.delete", "Delete databases"),
    Permission("database.view-password", "See database passwords", danger=True),
)

CATALOGUE: dict[str, Permission] = {p.key: p for p in _CATALOGUE}
ALL: frozenset[str] = frozenset(CATALOGUE)


def groups() -> dict[str, list[Permission]]:
    out: dict[str, list[Permission]] = {}
    for perm in _CATALOGUE:
        out.setdefault(perm.group, []).append(perm)
    return out


def require_known(key: str) -> str:
    """Fail at import time when a route names a permission that does not exist."""
    if key not in CATALOGUE:
        raise KeyError(f"unknown permission node {key!r}")
    return key
