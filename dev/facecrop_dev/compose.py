"""docker-compose.yaml's Airflow services, as commands and environments runnable without Docker.

The deployment tests and the local stack start the same Airflow programs the compose file
would, with its settings read from it (not copied), so the two cannot drift: variables are
interpolated as `docker compose` does, and service hosts and container paths are mapped to
local ones. Pure: the caller reads the file and starts the processes.
"""

from __future__ import annotations

import re
import shlex
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any

AIRFLOW_SERVICE_PREFIX = "airflow-"


class ComposeError(ValueError):
    """The compose file cannot be used as asked (a required variable is unset, say)."""


@dataclass(frozen=True)
class Service:
    name: str
    command: list[str]  # after the image's entrypoint (`airflow`), or a full bash command
    environment: dict[str, str]
    entrypoint: list[str]


# ${VAR}, ${VAR:-default}, ${VAR-default}, ${VAR:?message}, ${VAR?message}, $VAR, and $$.
_VARIABLE = re.compile(r"\$(?:(\$)|\{([A-Za-z_][A-Za-z0-9_]*)(?:(:?[-?])((?:[^{}]|\{[^{}]*\})*))?\}|([A-Za-z_][A-Za-z0-9_]*))")


def interpolate(value: str, variables: Mapping[str, str]) -> str:
    """Substitute variables the way Compose does; a `:?` / `?` variable that is missing
    raises ComposeError with the file's own message."""

    def one(m: re.Match[str]) -> str:
        escaped, name, op, arg, bare = m.groups()
        if escaped:
            return "$"
        if bare:
            return variables.get(bare, "")
        current = variables.get(name)
        unset_or_empty = current is None or (op is not None and op.startswith(":") and current == "")
        if op in (":-", "-"):
            return interpolate(arg, variables) if unset_or_empty else current
        if op in (":?", "?"):
            if unset_or_empty:
                raise ComposeError(f"{name}: {arg or 'required variable is not set'}")
            return current
        return current or ""

    return _VARIABLE.sub(one, value)


def _resolve(node: Any, variables: Mapping[str, str]) -> Any:
    if isinstance(node, str):
        return interpolate(node, variables)
    if isinstance(node, list):
        return [_resolve(v, variables) for v in node]
    if isinstance(node, dict):
        return {k: _resolve(v, variables) for k, v in node.items()}
    return node


def _as_list(command: Any) -> list[str]:
    if command is None:
        return []
    return shlex.split(command) if isinstance(command, str) else [str(c) for c in command]


def airflow_services(compose: Mapping[str, Any], variables: Mapping[str, str], profiles: tuple[str, ...] = ()) -> dict[str, Service]:
    """Every `airflow-*` service active for `profiles`, interpolated with `variables` (what
    `.env` and the shell would give Compose)."""
    out = {}
    for name, svc in compose["services"].items():
        if not name.startswith(AIRFLOW_SERVICE_PREFIX):
            continue
        if svc.get("profiles") and not set(svc["profiles"]) & set(profiles):
            continue
        svc = _resolve(svc, variables)
        env = svc.get("environment") or {}
        if isinstance(env, list):
            env = dict(item.split("=", 1) for item in env)
        out[name] = Service(
            name=name,
            command=_as_list(svc.get("command")),
            environment={k: "" if v is None else str(v) for k, v in env.items()},
            entrypoint=_as_list(svc.get("entrypoint")),
        )
    return out


_URL_AUTHORITY = re.compile(r"(?P<scheme>[a-z][a-z0-9+.\-]*://)(?P<user>[^/@\s\"']*@)?(?P<host>[A-Za-z0-9_.\-]+)(?P<port>:\d+)?")


def localize(value: str, hosts: Mapping[str, str], paths: Mapping[str, str]) -> str:
    """Point a setting at local programs: `scheme://[user@]service[:port]` becomes the
    address `hosts` gives for `service` or `service:port` (e.g. "127.0.0.1:54321"), and
    container paths become local ones (longest prefix first)."""

    def swap(m: re.Match[str]) -> str:
        host, port = m["host"], m["port"] or ""
        target = hosts.get(host + port) or hosts.get(host)
        if target is None:
            return m.group(0)
        return f"{m['scheme']}{m['user'] or ''}{target}"

    value = _URL_AUTHORITY.sub(swap, value)
    for container_path in sorted(paths, key=len, reverse=True):
        value = re.sub(rf"{re.escape(container_path)}(?![\w.\-])", paths[container_path], value)
    return value
