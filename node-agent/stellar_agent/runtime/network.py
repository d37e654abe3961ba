"""Tenant isolation on a Docker node: one bridge network per server plus firewall rules the agent owns.

Why both: a bridge of its own (``enable_icc`` off) keeps a server off every other server's L2
segment, and Docker's own isolation chains drop traffic between bridges. Neither stops a
container from reaching the *host* (the gateway address is the host, so the agent, a local broker
or anything listening on 0.0.0.0 answers) nor link-local/metadata addresses (169.254.0.0/16).
Those are closed by two chains the agent creates idempotently and can remove:

* ``STELLAR-INPUT`` (jumped to from ``INPUT``): packets from our bridges (``stl+``) to the host
  itself are dropped unless they belong to a connection the host opened (replies to the
  ``docker-proxy`` forwarding a published port, for example).
* ``STELLAR-FORWARD`` (jumped to from ``DOCKER-USER``, which Docker evaluates first in
  ``FORWARD``): link-local destinations and bridge-to-bridge traffic from our bridges are dropped.

Every bridge is named ``stl-<hash>``, so the rules match the ``stl+`` interface wildcard and never
change when servers come and go: creating or deleting a server only touches its network.
"""

from __future__ import annotations

import hashlib
import ipaddress
import logging
import shutil
import subprocess
import threading
from typing import Any

log = logging.getLogger(__name__)

BRIDGE_PREFIX = "stl-"
IFACE_MATCH = "stl+"
INPUT_CHAIN = "STELLAR-INPUT"
FORWARD_CHAIN = "STELLAR-FORWARD"
LINK_LOCAL = "169.254.0.0/16"
DEFAULT_POOL = "10.213.0.0/16"  # carved into /28s: Docker's default pools run out after ~30 networks
SUBNET_PREFIX = 28

# (chain, rule) pairs, in order; each rule is iptables arguments after "-A CHAIN".
RULES: tuple[tuple[str, tuple[str, ...]], ...] = (
    (INPUT_CHAIN, ("-i", IFACE_MATCH, "-m", "conntrack", "--ctstate", "ESTABLISHED,RELATED", "-j", "RETURN")),
    (INPUT_CHAIN, ("-i", IFACE_MATCH, "-j", "DROP")),
    (FORWARD_CHAIN, ("-i", IFACE_MATCH, "-d", LINK_LOCAL, "-j", "DROP")),
    (FORWARD_CHAIN, ("-i", IFACE_MATCH, "-o", IFACE_MATCH, "-j", "DROP")),
)
HOOKS: tuple[tuple[str, str], ...] = (("INPUT", INPUT_CHAIN), ("DOCKER-USER", FORWARD_CHAIN))


class FirewallError(Exception):
    """iptables is missing or refused a rule."""


def network_name(server_id: str) -> str:
    return f"stellar-net-{server_id}"


def bridge_name(server_id: str) -> str:
    """A Linux interface name (15 bytes at most) derived from the server id."""
    return BRIDGE_PREFIX + hashlib.sha256(server_id.encode()).hexdigest()[:11]


class Firewall:
    """The agent's iptables chains; every method is idempotent and safe to call concurrently."""

    def __init__(self, iptables: str | None = None) -> None:
        self.iptables = iptables or shutil.which("iptables") or ""
        self._lock = threading.Lock()

    def available(self) -> bool:
        return bool(self.iptables)

    def _run(self, *args: str, check: bool = True) -> bool:
        if not self.iptables:
            raise FirewallError("iptables is not installed")
        try:
            done = subprocess.run([self.iptables, "-w", "5", *args], capture_output=True, text=True, timeout=20)
        except (OSError, subprocess.SubprocessError) as exc:
            raise FirewallError(f"iptables {' '.join(args)}: {exc}") from None
        if check and done.returncode != 0:
            raise FirewallError(f"iptables {' '.join(args)}: {done.stderr.strip()}")
        return done.returncode == 0

    def _has_chain(self, chain: str) -> bool:
        return self._run("-S", chain, check=False)

    def ensure(self) -> None:
        """Create the chains, their rules and the jumps to them; missing pieces only.

        Called before every container create, so rules come back after a Docker restart.
        """
        with self._lock:
            for chain in (INPUT_CHAIN, FORWARD_CHAIN):
                if not self._has_chain(chain) and not self._run("-N", chain, check=False) \
                        and not self._has_chain(chain):
                    raise FirewallError(f"cannot create chain {chain}")
            for chain, rule in RULES:
                if not self._run("-C", chain, *rule, check=False):
                    self._run("-A", chain, *rule)
            if not self._has_chain("DOCKER-USER"):  # Docker makes it at start; make it if it has not yet
                self._run("-N", "DOCKER-USER", check=False)
            for parent, chain in HOOKS:
                if not self._run("-C", parent, "-j", chain, check=False):
                    self._run("-I", parent, "1", "-j", chain)

    def installed(self) -> bool:
        """True when every rule and jump is in place."""
        if not self.iptables:
            return False
        return all(self._run("-C", chain, *rule, check=False) for chain, rule in RULES) and all(
            self._run("-C", parent, "-j", chain, check=False) for parent, chain in HOOKS
        )

    def remove(self) -> None:
        """Take the jumps and chains away (a node leaving Docker isolation, or a test cleaning up)."""
        with self._lock:
            for parent, chain in HOOKS:
                while self._run("-C", parent, "-j", chain, check=False):
                    self._run("-D", parent, "-j", chain, check=False)
            for chain in (INPUT_CHAIN, FORWARD_CHAIN):
                if self._has_chain(chain):
                    self._run("-F", chain, check=False)
                    self._run("-X", chain, check=False)


class Networks:
    """One bridge network per server, on /28 subnets of ``pool``."""

    def __init__(self, client: Any, node_id: str, pool: str = DEFAULT_POOL) -> None:
        self.client = client
        self.node_id = node_id
        self.pool = ipaddress.ip_network(pool)
        self._lock = threading.Lock()

    def _get(self, server_id: str) -> Any:
        import docker

        try:
            return self.client.networks.get(network_name(server_id))
        except docker.errors.NotFound:
            return None

    def _used(self) -> list[ipaddress.IPv4Network | ipaddress.IPv6Network]:
        used = []
        for net in self.client.networks.list():
            for cfg in (net.attrs.get("IPAM") or {}).get("Config") or []:
                if cfg.get("Subnet"):
                    used.append(ipaddress.ip_network(cfg["Subnet"], strict=False))
        return used

    def ensure(self, server_id: str) -> str:
        """The server's network, created when missing; returns its name."""
        import docker
        from docker.types import IPAMConfig, IPAMPool

        name = network_name(server_id)
        with self._lock:
            existing = self._get(server_id)
            if existing is not None:
                if existing.attrs.get("Labels", {}).get("stellar.server") != server_id:
                    raise FirewallError(f"network {name} is not ours (labels differ)")
                return name
            used = self._used()
            for subnet in self.pool.subnets(new_prefix=SUBNET_PREFIX):
                if any(subnet.overlaps(u) for u in used):
                    continue
                hosts = subnet.hosts()
                gateway = str(next(hosts))
                try:
                    self.client.networks.create(
                        name,
                        driver="bridge",
                        internal=False,  # game servers may talk to the internet (masqueraded)
                        enable_ipv6=False,
                        options={
                            "com.docker.network.bridge.name": bridge_name(server_id),
                            "com.docker.network.bridge.enable_icc": "false",
                        },
                        ipam=IPAMConfig(pool_configs=[IPAMPool(subnet=str(subnet), gateway=gateway)]),
                        labels={"stellar.server": server_id, "stellar.node": self.node_id},
                        check_duplicate=True,
                    )
                except docker.errors.APIError as exc:
                    text = str(exc.explanation or exc).lower()
                    if "overlap" in text:  # another agent took this subnet meanwhile: next one
                        used.append(subnet)
                        continue
                    if "already exists" in text and self._get(server_id) is not None:
                        return name
                    raise FirewallError(f"cannot create network {name}: {exc.explanation or exc}") from None
                return name
            raise FirewallError(f"no free /{SUBNET_PREFIX} left in {self.pool}")

    def remove(self, server_id: str) -> None:
        """Delete the server's network (its containers must be gone); absent is fine."""
        import docker

        network = self._get(server_id)
        if network is None or network.attrs.get("Labels", {}).get("stellar.server") != server_id:
            return
        try:
            network.remove()
        except docker.errors.NotFound:
            pass
