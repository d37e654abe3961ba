"""The embedded broker's copy of Mosquitto's dynamic-security plugin.

Holds clients and roles in the dynsec JSON format (see ``dynsec_file``), answers
authentication and ACL questions, and executes ``$CONTROL/dynamic-security/v1`` command
batches, replying with the same JSON shapes and error strings Mosquitto 2.0.11 uses.
Single-threaded by design: the broker's event loop is the only caller.
"""

from __future__ import annotations

import json
from collections.abc import Callable
from pathlib import Path
from typing import Any

from . import acl, dynsec_file

COMMAND_TOPIC = "$CONTROL/dynamic-security/v1"
RESPONSE_TOPIC = f"{COMMAND_TOPIC}/response"


class CommandError(Exception):
    """A dynsec command failed; the message is the ``error`` string sent back."""


def _str(cmd: dict[str, Any], key: str, what: str) -> str:
    value = cmd.get(key)
    if not isinstance(value, str) or not value:
        raise CommandError(f"Invalid/missing {what}")
    return value


def _valid_acl_topic(topic: str) -> bool:
    levels = topic.split("/")
    return all(
        ("#" not in lv or (lv == "#" and i == len(levels) - 1)) and ("+" not in lv or lv == "+")
        for i, lv in enumerate(levels)
    )


class DynsecStore:
    """Clients, roles and default access, persisted to ``path`` after every change."""

    def __init__(self, path: Path) -> None:
        self.path = path
        doc = dynsec_file.load(path)
        self.clients: dict[str, dict[str, Any]] = {c["username"]: c for c in doc.get("clients", [])}
        self.roles: dict[str, dict[str, Any]] = {r["rolename"]: r for r in doc.get("roles", [])}
        self.groups: list[Any] = doc.get("groups", [])  # kept on save; groups are not implemented
        self.default_access: dict[str, bool] = {
            **dynsec_file.DEFAULT_ACL_ACCESS, **doc.get("defaultACLAccess", {})
        }
        self._handlers: dict[str, Callable[[dict[str, Any], set[str]], dict[str, Any] | None]] = {
            "createClient": self._create_client,
            "deleteClient": self._delete_client,
            "setClientPassword": self._set_client_password,
            "enableClient": self._enable_client,
            "disableClient": self._disable_client,
            "addClientRole": self._add_client_role,
            "removeClientRole": self._remove_client_role,
            "getClient": self._get_client,
            "listClients": self._list_clients,
            "createRole": self._create_role,
            "deleteRole": self._delete_role,
            "getRole": self._get_role,
            "listRoles": self._list_roles,
            "addRoleACL": self._add_role_acl,
            "removeRoleACL": self._remove_role_acl,
            "getDefaultACLAccess": self._get_default_access,
            "setDefaultACLAccess": self._set_default_access,
        }

    # -- questions the broker asks ------------------------------------------------------

    def authenticate(self, username: str | None, password: str | None) -> bool:
        client = self.clients.get(username or "")
        if client is None or client.get("disabled") or password is None:
            return False
        return dynsec_file.verify_password(client, password)

    def allowed(self, username: str | None, access: str, topic: str) -> bool:
        client = self.clients.get(username or "")
        if client is None:
            return False
        roles = [
            (self.roles[r["rolename"]], int(r.get("priority", -1)))
            for r in client.get("roles", [])
            if r.get("rolename") in self.roles
        ]
        return acl.check(roles, access, topic, self.default_access)

    # -- the control topic -------------------------------------------------------------

    def handle(self, payload: bytes) -> tuple[bytes, set[str]]:
        """Run a command batch; return the response payload and usernames to disconnect."""
        kick: set[str] = set()
        try:
            commands = json.loads(payload)["commands"]
            if not isinstance(commands, list):
                raise TypeError
        except (ValueError, KeyError, TypeError):
            error = {"command": "Unknown command", "error": "Invalid/missing commands"}
            return json.dumps({"responses": [error]}).encode(), kick
        responses = []
        changed = False
        for cmd in commands:
            name = cmd.get("command") if isinstance(cmd, dict) else None
            response: dict[str, Any] = {"command": name if isinstance(name, str) else "Unknown command"}
            try:
                if not isinstance(name, str):
                    raise CommandError("Missing command")
                handler = self._handlers.get(name)
                if handler is None:
                    raise CommandError("Unknown command")
                data = handler(cmd, kick)
                if data is not None:
                    response["data"] = data
                if not name.startswith(("get", "list")):
                    changed = True
            except CommandError as exc:
                response["error"] = str(exc)
            corr = cmd.get("correlationData") if isinstance(cmd, dict) else None
            if corr is not None:
                response["correlationData"] = corr
            responses.append(response)
        if changed:
            self.save()
        return json.dumps({"responses": responses}).encode(), kick

    def save(self) -> None:
        dynsec_file.save(self.path, {
            "clients": list(self.clients.values()),
            "groups": self.groups,
            "roles": list(self.roles.values()),
            "defaultACLAccess": self.default_access,
        })

    # -- commands ----------------------------------------------------------------------

    def _client(self, cmd: dict[str, Any]) -> dict[str, Any]:
        client = self.clients.get(_str(cmd, "username", "username"))
        if client is None:
            raise CommandError("Client not found")
        return client

    def _role(self, cmd: dict[str, Any]) -> dict[str, Any]:
        role = self.roles.get(_str(cmd, "rolename", "rolename"))
        if role is None:
            raise CommandError("Role not found")
        return role

    def _role_list(self, raw: Any) -> list[dict[str, Any]]:
        if raw is None:
            return []
        if not isinstance(raw, list) or not all(isinstance(r, dict) and isinstance(r.get("rolename"), str)
                                                for r in raw):
            raise CommandError("'roles' not an array or missing/invalid rolename")
        out = []
        for r in raw:
            if r["rolename"] not in self.roles:
                raise CommandError("Role not found")
            entry = {"rolename": r["rolename"]}
            if int(r.get("priority", -1)) != -1:
                entry["priority"] = int(r["priority"])
            out.append(entry)
        return out

    def _create_client(self, cmd: dict[str, Any], kick: set[str]) -> None:
        username = _str(cmd, "username", "username")
        if username in self.clients:
            raise CommandError("Client already exists")
        client: dict[str, Any] = {"username": username, "roles": self._role_list(cmd.get("roles"))}
        for key in ("textname", "textdescription", "clientid"):
            if isinstance(cmd.get(key), str):
                client[key] = cmd[key]
        password = cmd.get("password")
        if password is not None:
            if not isinstance(password, str):
                raise CommandError("Invalid/missing password")
            client.update(dynsec_file.hash_password(password))
        self.clients[username] = client

    def _delete_client(self, cmd: dict[str, Any], kick: set[str]) -> None:
        client = self._client(cmd)
        del self.clients[client["username"]]
        kick.add(client["username"])

    def _set_client_password(self, cmd: dict[str, Any], kick: set[str]) -> None:
        client = self._client(cmd)
        client.update(dynsec_file.hash_password(_str(cmd, "password", "password")))
        kick.add(client["username"])  # Mosquitto re-authenticates by disconnecting

    def _enable_client(self, cmd: dict[str, Any], kick: set[str]) -> None:
        self._client(cmd).pop("disabled", None)

    def _disable_client(self, cmd: dict[str, Any], kick: set[str]) -> None:
        client = self._client(cmd)
        client["disabled"] = True
        kick.add(client["username"])

    def _add_client_role(self, cmd: dict[str, Any], kick: set[str]) -> None:
        client, role = self._client(cmd), self._role(cmd)
        if any(r["rolename"] == role["rolename"] for r in client["roles"]):
            raise CommandError("Internal error")  # what Mosquitto 2.0.11 answers here
        entry = {"rolename": role["rolename"]}
        if int(cmd.get("priority", -1)) != -1:
            entry["priority"] = int(cmd["priority"])
        client["roles"].append(entry)
        kick.add(client["username"])

    def _remove_client_role(self, cmd: dict[str, Any], kick: set[str]) -> None:
        client, role = self._client(cmd), self._role(cmd)
        client["roles"] = [r for r in client["roles"] if r["rolename"] != role["rolename"]]
        kick.add(client["username"])

    def _client_view(self, client: dict[str, Any]) -> dict[str, Any]:
        view = {"username": client["username"]}
        for key in ("clientid", "textname", "textdescription"):
            if key in client:
                view[key] = client[key]
        if client.get("disabled"):
            view["disabled"] = True
        view["roles"] = [dict(r) for r in client.get("roles", [])]
        view["groups"] = []
        return view

    def _get_client(self, cmd: dict[str, Any], kick: set[str]) -> dict[str, Any]:
        return {"client": self._client_view(self._client(cmd))}

    def _page(self, cmd: dict[str, Any], items: list[Any]) -> list[Any]:
        offset = max(0, int(cmd.get("offset", 0) or 0))
        count = int(cmd.get("count", -1) or -1)
        return items[offset:] if count < 0 else items[offset:offset + count]

    def _list_clients(self, cmd: dict[str, Any], kick: set[str]) -> dict[str, Any]:
        names = sorted(self.clients)
        page = self._page(cmd, names)
        if cmd.get("verbose"):
            page = [self._client_view(self.clients[n]) for n in page]
        return {"totalCount": len(names), "clients": page}

    def _acl_entry(self, raw: dict[str, Any]) -> dict[str, Any]:
        acltype = raw.get("acltype")
        if not isinstance(acltype, str):
            raise CommandError("Invalid/missing acltype")
        if acltype not in acl.ACL_TYPES:
            raise CommandError("Unknown acltype")
        topic = raw.get("topic")
        if not isinstance(topic, str) or not topic:
            raise CommandError("Invalid/missing topic")
        if not _valid_acl_topic(topic):
            raise CommandError("Invalid ACL topic")
        return {"acltype": acltype, "topic": topic, "priority": int(raw.get("priority", -1)),
                "allow": bool(raw.get("allow", False))}

    def _create_role(self, cmd: dict[str, Any], kick: set[str]) -> None:
        name = _str(cmd, "rolename", "rolename")
        if name in self.roles:
            raise CommandError("Role already exists")
        acls = [self._acl_entry(a) for a in cmd.get("acls") or []]
        role: dict[str, Any] = {"rolename": name, "acls": acls}
        for key in ("textname", "textdescription"):
            if isinstance(cmd.get(key), str):
                role[key] = cmd[key]
        self.roles[name] = role

    def _delete_role(self, cmd: dict[str, Any], kick: set[str]) -> None:
        role = self._role(cmd)
        del self.roles[role["rolename"]]
        for client in self.clients.values():
            client["roles"] = [r for r in client.get("roles", []) if r["rolename"] != role["rolename"]]

    def _get_role(self, cmd: dict[str, Any], kick: set[str]) -> dict[str, Any]:
        return {"role": json.loads(json.dumps(self._role(cmd)))}

    def _list_roles(self, cmd: dict[str, Any], kick: set[str]) -> dict[str, Any]:
        names = sorted(self.roles)
        page = self._page(cmd, names)
        if cmd.get("verbose"):
            page = [json.loads(json.dumps(self.roles[n])) for n in page]
        return {"totalCount": len(names), "roles": page}

    def _add_role_acl(self, cmd: dict[str, Any], kick: set[str]) -> None:
        role = self._role(cmd)
        entry = self._acl_entry(cmd)
        if any(a["acltype"] == entry["acltype"] and a["topic"] == entry["topic"] for a in role["acls"]):
            raise CommandError("ACL with this topic already exists")
        role["acls"].append(entry)

    def _remove_role_acl(self, cmd: dict[str, Any], kick: set[str]) -> None:
        role = self._role(cmd)
        acltype = cmd.get("acltype")
        if not isinstance(acltype, str):
            raise CommandError("Invalid/missing acltype")
        topic = _str(cmd, "topic", "topic")
        kept = [a for a in role["acls"] if not (a["acltype"] == acltype and a["topic"] == topic)]
        if len(kept) == len(role["acls"]):
            raise CommandError("ACL not found")
        role["acls"] = kept

    def _get_default_access(self, cmd: dict[str, Any], kick: set[str]) -> dict[str, Any]:
        return {"acls": [{"acltype": k, "allow": v} for k, v in self.default_access.items()]}

    def _set_default_access(self, cmd: dict[str, Any], kick: set[str]) -> None:
        for entry in cmd.get("acls") or []:
            if entry.get("acltype") in self.default_access:
                self.default_access[entry["acltype"]] = bool(entry.get("allow"))
