"""The landing page's workspace block: the plan and the month's posts against its limit, the
publishing queue, and whether analytics is available, with when each was last read.

    <h2>Workspace</h2><table><tr><th>plan</th><td>basic: 750 published + 12 scheduled of
    2,500 this month (30%); resets in 24 days</td>...
"""

from __future__ import annotations

import html
from collections.abc import Callable, Sequence

from exporter.store import Store
from exporter.workspace_answers import (
    ANALYTICS,
    DELIVERY_JOBS,
    USAGE,
    Analytics,
    DeliveryJobs,
    ReadRecord,
    Usage,
)

When = Callable[[float | None, float], str]


def render_workspaces(stores: Sequence[Store], now: float, when: When) -> str:
    """One block per workspace whose reads are on (only shard 0 reads them); '' if none."""
    blocks = []
    for store in stores:
        records = {read: r for read, r in store.facts.records.items() if r.interval > 0}
        if not records:
            continue
        title = "Workspace" + (f" {html.escape(store.workspace)}" if store.workspace else "")
        rows = []
        if USAGE in records:
            rows.append(("plan", _usage(store.facts.usage, now, when), records[USAGE], ""))
        if DELIVERY_JOBS in records:
            jobs = store.facts.delivery_jobs
            klass = "bad" if jobs is not None and jobs.dead else ""
            rows.append(("publishing queue", _queue(jobs), records[DELIVERY_JOBS], klass))
        if ANALYTICS in records:
            analytics = store.facts.analytics
            rows.append(("analytics", _analytics(analytics), records[ANALYTICS], ""))
        body = "\n".join(_row(*row, now=now, when=when) for row in rows)
        blocks.append(
            f"<h2>{title}</h2>\n<p>Read from UniPost's own database in the background "
            "(no platform call).</p>\n<table><tr><th></th><th>now</th><th>last read</th>"
            f"<th>next read</th></tr>\n{body}\n</table>"
        )
    return "\n".join(blocks)


def _row(name: str, text: str, record: ReadRecord, klass: str, *, now: float, when: When) -> str:
    last = when(record.last_success, now)
    if record.consecutive_failures:
        failures = record.consecutive_failures
        last += f" <span class=down>({failures} failed since)</span>"
    next_read = "reading now" if record.next_read is None else when(record.next_read, now)
    opening = f'<tr class="{klass}">' if klass else "<tr>"
    return f"{opening}<th>{name}</th><td>{text}</td><td>{last}</td><td>{next_read}</td></tr>"


def _usage(usage: Usage | None, now: float, when: When) -> str:
    if usage is None:
        return "<span class=muted>not read yet</span>"
    posts = dict(usage.posts)
    published, scheduled = posts.get("published"), posts.get("scheduled")
    used = f"{published or 0:,.0f} published + {scheduled or 0:,.0f} scheduled"
    if usage.post_limit is None:
        limit = "(no monthly limit)"
    else:
        share = ((published or 0) + (scheduled or 0)) / usage.post_limit if usage.post_limit else 0
        limit = f"of {usage.post_limit:,.0f} this month ({share:.0%})"
    plan = html.escape(usage.plan or "unknown")
    text = f"{plan}: {used} {limit}; resets {when(usage.resets_at, now)}"
    if not usage.scheduling_allowed:
        text += "<br><span class=down>Scheduling is blocked: the month's posts reached the limit."
        text += "</span>"
    return text


def _queue(jobs: DeliveryJobs | None) -> str:
    if jobs is None:
        return "<span class=muted>not read yet</span>"
    states = ("pending", "running", "retrying", "dead")
    counts = ", ".join(
        f"{count:,.0f} {state}"
        for state, count in zip(states, jobs, strict=False)
        if count is not None
    )
    if jobs.dead:
        counts += " <span class=down>(dead jobs failed for good: retry or dismiss them)</span>"
    if jobs.recovered_today is not None:
        counts += f"; {jobs.recovered_today:,.0f} recovered today"
    return counts


def _analytics(analytics: Analytics | None) -> str:
    if analytics is None:
        return "<span class=muted>not read yet</span>"
    if not analytics.available:
        return (
            "not available: analytics needs a paid UniPost plan (UniPost answered 402). "
            "Asked again every 6 h, and at once when the plan changes."
        )
    posts = dict(analytics.window_posts).get("all")
    ready = sum(1 for entry in analytics.platforms if entry.health == "ready")
    platforms = ", ".join(
        f"{html.escape(row.platform)} {row.posts:,.0f}"
        for row in analytics.by_platform
        if row.posts is not None
    )
    text = f"available: {posts or 0:,.0f} posts in the last 30 days"
    if platforms:
        text += f" ({platforms})"
    return text + f"; {ready} of {len(analytics.platforms)} platforms ready"
