"""Horizontal sharding: which accounts this replica polls, and its share of the budget."""

from __future__ import annotations

import re
import socket
from dataclasses import dataclass, replace

from exporter.schema import Config, WorkspaceConfig

_ORDINAL = re.compile(r"-(\d+)$")


def fnv1a_32(text: str) -> int:
    """32-bit FNV-1a of the UTF-8 bytes: stable across processes, versions and machines."""
    value = 0x811C9DC5
    for byte in text.encode("utf-8"):
        value = ((value ^ byte) * 0x01000193) & 0xFFFFFFFF
    return value


@dataclass(frozen=True)
class Shard:
    """Replica `index` of `total` (zero-indexed, as kube-state-metrics names them)."""

    index: int = 0
    total: int = 1

    def __post_init__(self) -> None:
        if self.total < 1 or not 0 <= self.index < self.total:
            raise ValueError(f"shard {self.index} of {self.total}: need 0 <= shard < total-shards")

    def owns(self, account_id: str) -> bool:
        """Whether this replica polls the account: FNV-1a 32 of its ID, modulo the total."""
        return self.total == 1 or fnv1a_32(account_id) % self.total == self.index

    def apply(self, config: Config) -> Config:
        """This replica's accounts, and its share of each workspace's budget."""
        if self.total == 1:
            return config
        return replace(config, workspaces=tuple(self._apply(ws) for ws in config.workspaces))

    def _apply(self, workspace: WorkspaceConfig) -> WorkspaceConfig:
        rpm = workspace.unipost.requests_per_minute / self.total
        return replace(
            workspace,
            unipost=replace(workspace.unipost, requests_per_minute=rpm),
            accounts=tuple(a for a in workspace.accounts if self.owns(a.id)),
        )


def ordinal_from_hostname(hostname: str | None = None) -> int:
    """The StatefulSet ordinal at the end of the pod's hostname (`unipost-exporter-2` -> 2)."""
    name = hostname if hostname is not None else socket.gethostname()
    match = _ORDINAL.search(name)
    if match is None:
        raise ValueError(f"hostname {name!r} does not end in -<ordinal>")
    return int(match.group(1))
