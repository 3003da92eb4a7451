"""`unipost-exporter accounts`: what each workspace's key can see (GET /v1/accounts), as a
table or as YAML ready to paste under `accounts:`."""

from __future__ import annotations

import argparse
import asyncio
import json
import sys
from collections.abc import Sequence
from typing import TextIO

from exporter.client import UniPostClient, make_session
from exporter.config import load_config
from exporter.listing import ListedAccount, classify_listing
from exporter.logs import scrub
from exporter.parse import ApiError, ErrorKind
from exporter.schema import Config, WorkspaceConfig
from exporter.store import ApiStats
from exporter.validation import ConfigError, print_problems


def main(argv: Sequence[str], out: TextIO = sys.stdout) -> int:
    """List every workspace's accounts; exit 1 with the reason when one cannot be listed."""
    parser = argparse.ArgumentParser(
        prog="unipost-exporter accounts",
        description="List the accounts each workspace's API key can see (GET /v1/accounts), "
        "to find their IDs for the config's `accounts:`. Spends one request per workspace.",
    )
    parser.add_argument(
        "--config.file",
        dest="config_file",
        default="config.yaml",
        metavar="PATH",
        help="the exporter's YAML config: its workspaces, keys and base_url (default: %(default)s)",
    )
    parser.add_argument(
        "--output",
        choices=["table", "yaml"],
        default="table",
        help="a table to read, or YAML to paste under accounts: (default: %(default)s)",
    )
    args = parser.parse_args(argv)
    try:
        config = load_config(args.config_file)
    except ConfigError as exc:
        print_problems(exc, "configuration", args.config_file)
        return 1
    listings = asyncio.run(_list_all(config))
    failed = False
    for workspace, listed in listings:
        if isinstance(listed, str):
            name = f"workspace {workspace.name}: " if workspace.name else ""
            print(f"unipost-exporter accounts: {name}{listed}", file=sys.stderr)
            failed = True
    good = [(ws, listed) for ws, listed in listings if not isinstance(listed, str)]
    if good:
        out.write(_yaml(good) if args.output == "yaml" else _table(good))
    return 1 if failed else 0


async def _list_all(
    config: Config,
) -> list[tuple[WorkspaceConfig, list[ListedAccount] | str]]:
    return [(ws, await _list(ws)) for ws in config.workspaces]


async def _list(workspace: WorkspaceConfig) -> list[ListedAccount] | str:
    """The workspace's accounts, or why they could not be listed."""
    unipost = workspace.unipost
    async with make_session(unipost) as session:
        raw = await UniPostClient(session, ApiStats(), unipost.base_url).list_accounts()
    result = raw.read(classify_listing)
    if not isinstance(result, ApiError):
        return list(result)
    if result.kind is ErrorKind.AUTH:
        return (
            f"UniPost at {unipost.base_url} rejected the API key ({result.http_status} "
            f"{result.code}): check api_key / api_key_file (UNIPOST_API_KEY)"
        )
    if result.http_status is None:
        return f"cannot reach UniPost at {unipost.base_url} ({result.code}: {result.message})"
    message = scrub(result.message, unipost.api_key)
    answered = f"UniPost at {unipost.base_url} answered {result.http_status} {result.code}"
    return answered + (f": {message}" if message else "")


def _table(listings: list[tuple[WorkspaceConfig, list[ListedAccount]]]) -> str:
    several = any(ws.name for ws, _ in listings)
    head = ["WORKSPACE"] * several + ["ID", "PLATFORM", "NAME", "STATUS"]
    rows = [
        [*([ws.name or ""] if several else []), a.id, a.platform or "", a.name, a.status]
        for ws, listed in listings
        for a in listed
    ]
    widths = [max(len(str(row[i])) for row in [head, *rows]) for i in range(len(head))]
    lines = ["  ".join(cell.ljust(w) for cell, w in zip(row, widths, strict=True)).rstrip()
             for row in [head, *rows]]  # fmt: skip
    return "\n".join(lines) + "\n"


def _yaml(listings: list[tuple[WorkspaceConfig, list[ListedAccount]]]) -> str:
    out = []
    for workspace, listed in listings:
        if workspace.name:
            out.append(f"# workspace {workspace.name}")
        out.append("accounts:")
        for account in listed:
            about = ", ".join(p for p in (account.platform, account.name, account.status) if p)
            # JSON strings are YAML scalars: any ID pastes back as itself.
            out.append(f"  - id: {json.dumps(account.id)}  # {_one_line(about)}")
    return "\n".join(out) + "\n"


def _one_line(text: str) -> str:
    return "".join(c if c.isprintable() else " " for c in text)
