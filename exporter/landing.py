"""The landing page: what a person opening the exporter wants to see, per account.

Plain server-rendered HTML, every value escaped, refreshed by a meta tag. At 10,000
accounts it stays fast by paging: a summary of every account by status, then one page of
PAGE_SIZE accounts, those that need attention first.
"""

from __future__ import annotations

import html
import math
from collections import Counter
from collections.abc import Mapping, Sequence
from datetime import UTC, datetime

from exporter import __version__
from exporter.landing_workspace import render_workspaces
from exporter.parse import Snapshot
from exporter.store import AccountState, Status, Store

PAGE_SIZE = 100
REFRESH_SECONDS = 30
RUNBOOK = "https://github.com/unipost-exporter/unipost-exporter/blob/main/docs/runbook.md"
# Per status: what to do, in a few words, and the runbook section that says more.
ADVICE: Mapping[Status, tuple[str, str]] = {
    Status.PENDING: ("Not polled yet: the first round is under way.", ""),
    Status.OK: ("", ""),
    Status.UPSTREAM_FAILING: (
        "The platform keeps failing for this account; it backs off and recovers on its own.",
        "unipostupstreamfailing",
    ),
    Status.ERROR: (
        "Polls fail: check UniPost's address, the network and the timeout.",
        "unipostaccounterroring",
    ),
    Status.UNAUTHORIZED: (
        "UniPost rejects the API key: fix it and reload.",
        "unipostapikeyrejected",
    ),
    Status.DISCONNECTED: ("Reconnect the account in UniPost.", "unipostaccountdisconnected"),
    Status.NEEDS_RECONNECT: (
        "Reconnect the account in UniPost (credentials or scopes).",
        "unipostaccountdisconnected",
    ),
    Status.NOT_SUPPORTED: ("UniPost has no metrics for this platform; nothing to do.", ""),
    Status.NOT_FOUND: (
        "No such account in this workspace: check the ID (unipost-exporter accounts lists them).",
        "account-statuses-without-an-alert",
    ),
}
# Statuses shown first: the ones a person must act on.
_ORDER = {status: rank for rank, status in enumerate(
    [Status.UNAUTHORIZED, Status.ERROR, Status.UPSTREAM_FAILING, Status.NEEDS_RECONNECT,
     Status.DISCONNECTED, Status.NOT_FOUND, Status.PENDING, Status.NOT_SUPPORTED, Status.OK]
)}  # fmt: skip
_ROW_CLASS = {
    Status.ERROR: "bad",
    Status.UNAUTHORIZED: "bad",
    Status.UPSTREAM_FAILING: "warn",
    Status.NEEDS_RECONNECT: "warn",
    Status.DISCONNECTED: "warn",
    Status.NOT_FOUND: "warn",
}
_STYLE = """body{font-family:sans-serif;margin:2em;color:#222}table{border-collapse:collapse}
td,th{border:1px solid #ccc;padding:.3em .6em;text-align:left;vertical-align:top}
.id{color:#666;font-size:.85em}.up{color:#1a7f37}.down{color:#c62828}.muted{color:#777}
.bad{background:#fdecea}.warn{background:#fff8e1}"""


def render(
    stores: Sequence[Store], now: float, monotonic: float, page: int = 1, demo_note: str = ""
) -> tuple[str, int]:
    """The page for `page` (1-based), and how many pages there are, at `now` (Unix time;
    `monotonic`: the same instant by the clock the accounts' next polls are planned on)."""
    named = any(store.workspace is not None for store in stores)
    accounts = [(store, a) for store in stores for a in store.accounts.values()]
    pages = max(1, math.ceil(len(accounts) / PAGE_SIZE))
    page = min(max(1, page), pages)
    accounts.sort(key=lambda pair: (_ORDER[pair[1].status], pair[1].account_name or pair[1].id))
    shown = accounts[(page - 1) * PAGE_SIZE : page * PAGE_SIZE]
    rows = "\n".join(_row(store, account, now, monotonic, named) for store, account in shown)
    summary = Counter(account.status for _, account in accounts)
    summary_text = ", ".join(
        f"{count} {status}" for status, count in sorted(summary.items(), key=lambda i: _ORDER[i[0]])
    )
    demo = (
        '<p style="background:#fff3cd;border:1px solid #e0b000;padding:.6em">'
        f"<strong>Demo mode.</strong> {_e(demo_note)}</p>\n"
        if demo_note
        else ""
    )
    workspace_th = "<th>workspace</th>" if named else ""
    body = f"""<!DOCTYPE html>
<html lang="en"><head><meta charset="utf-8">
<meta http-equiv="refresh" content="{REFRESH_SECONDS}">
<title>UniPost Exporter</title><style>{_STYLE}</style></head>
<body><h1>UniPost Exporter</h1>
{demo}<p>Version {_e(__version__)}. Metrics: <a href="metrics">/metrics</a>.
Health: <a href="-/healthy">/-/healthy</a>, <a href="-/ready">/-/ready</a>.
This page refreshes every {REFRESH_SECONDS} seconds.</p>
<p>Values come from background polls of UniPost; a scrape never calls UniPost. A count a
platform does not provide (YouTube's following, a channel's hidden subscribers, Threads'
following and posts) is absent from /metrics, never 0; its cell says why.</p>
{render_workspaces(stores, now, _when)}
<h2>Accounts: {len(accounts)}</h2>
<p>{_e(summary_text) or "No accounts yet."}</p>
<p>{_pager(page, pages)}Those that need attention first.</p>
<table><tr>{workspace_th}<th>account</th><th>platform</th><th>status</th>
<th>followers</th><th>following</th><th>posts</th><th>why, and what to do</th>
<th>publishing (UniPost's account health)</th>
<th>last success</th><th>next poll</th></tr>
{rows}
</table></body></html>
"""
    return body, pages


def _row(store: Store, account: AccountState, now: float, monotonic: float, named: bool) -> str:
    snapshot = account.snapshot
    next_poll = account.next_poll_wall(now, monotonic)
    klass = _ROW_CLASS.get(account.status)
    name = account.account_name
    who = f"{_e(name)}<br><span class=id>{_e(account.id)}</span>" if name else _e(account.id)
    cells = [
        *([_e(store.workspace or "")] if named else []),
        who,
        _e(account.platform),
        _e(account.status),
        *_counts(snapshot, account.previous),
        _why(account, snapshot),
        _publishing(account, now),
        _when(snapshot.fetched_at if snapshot else None, now),
        "polling now" if next_poll is None else _when(next_poll, now),
    ]
    return (
        (f'<tr class="{klass}">' if klass else "<tr>")
        + "".join(f"<td>{cell}</td>" for cell in cells)
        + "</tr>"
    )


def _counts(snapshot: Snapshot | None, previous: Snapshot | None) -> list[str]:
    """Followers, following, posts: the value and its change since the previous good
    snapshot, or why the count is absent."""
    if snapshot is None:
        return ["", "", ""]
    why = dict(snapshot.unavailable)
    cells = []
    for name in ("followers", "following", "posts"):
        count = getattr(snapshot, name)
        if count is None:
            cells.append(f"<span class=muted>absent: {_e(why.get(name, 'not provided'))}</span>")
            continue
        before = getattr(previous, name) if previous is not None else None
        change = ""
        if before is not None and count != before:
            sign, klass = ("+", "up") if count > before else ("", "down")
            change = f" <span class={klass}>({sign}{count - before:,.0f})</span>"
        cells.append(f"{count:,.0f}{change}")
    return cells


# Zero-filled failures that do not pass on their own: the advice says what a human must do.
UPSTREAM_ADVICE: Mapping[str, str] = {
    "upstream_status=401": "The platform rejects the account's token and UniPost cannot "
    "refresh it: reconnect the account in UniPost.",
    "upstream_status=403": "The platform refuses this account's lookups (its tier or "
    "scopes): reconnect it in UniPost, or change the tier.",
}


def _why(account: AccountState, snapshot: Snapshot | None) -> str:
    advice, anchor = ADVICE[account.status]
    if account.status == Status.UPSTREAM_FAILING:
        advice = UPSTREAM_ADVICE.get(account.problem, advice)
    parts = []
    if account.problem:
        cause = account.problem + (f": {account.problem_detail}" if account.problem_detail else "")
        parts.append(f"<code>{_e(cause)}</code>")
    if advice:
        link = f' <a href="{RUNBOOK}#{anchor}">runbook</a>' if anchor else ""
        parts.append(_e(advice) + link)
    if snapshot is not None and snapshot.platform_flags:
        flags = ", ".join(
            f"{name}: {'yes' if on else 'no'}" for name, on in snapshot.platform_flags
        )
        parts.append(f"<span class=muted>platform flags: {_e(flags)}</span>")
    return "<br>".join(parts)


def _publishing(account: AccountState, now: float) -> str:
    """The account's health in UniPost: status, token expiry, last post, last post error."""
    health = account.health
    if health is None:
        return "<span class=muted>not read yet</span>"
    expiry = health.token_expires_at
    parts = [_e(health.status)]
    if expiry is not None:
        verb = "token expired" if expiry <= now else "token expires"
        parts.append(f"{verb} {_when(expiry, now)}")
    if health.last_successful_post_at is not None:
        parts.append(f"last post {_when(health.last_successful_post_at, now)}")
    text = "; ".join(parts)
    if health.last_error_code or health.last_error_message:
        when = _when(health.last_error_at, now) if health.last_error_at else ""
        error = f"last post error {_e(health.last_error_code or 'unknown')} {when}".rstrip()
        if health.last_error_message:
            error += f": <code>{_e(health.last_error_message)}</code>"
        text += "<br>" + error
    return text


def _when(timestamp: float | None, now: float) -> str:
    """`3 min ago` or `in 12 min`, with the exact time on hover."""
    if timestamp is None:
        return "never"
    exact = datetime.fromtimestamp(timestamp, UTC).strftime("%Y-%m-%d %H:%M:%S UTC")
    return f'<span title="{exact}">{relative(timestamp - now)}</span>'


def relative(seconds: float) -> str:
    """A duration from now as a person says it: `just now`, `3 min ago`, `in 2 h`."""
    size = abs(seconds)
    if size < 5:
        return "just now"
    for unit, length in (("day", 86400), ("h", 3600), ("min", 60), ("s", 1)):
        if size >= length:
            count = size // length
            plural = "s" if unit == "day" and count != 1 else ""
            amount = f"{count:.0f} {unit}{plural}"
            break
    return f"in {amount}" if seconds > 0 else f"{amount} ago"


def _pager(page: int, pages: int) -> str:
    if pages == 1:
        return ""
    links = []
    if page > 1:
        links.append(f'<a href="?page={page - 1}">previous</a>')
    if page < pages:
        links.append(f'<a href="?page={page + 1}">next</a>')
    return f"Page {page} of {pages} ({PAGE_SIZE} accounts a page): {' '.join(links)}. "


def _e(text: str) -> str:
    return html.escape(str(text), quote=True)
