"""Grafana dashboards as code (grafana-foundation-sdk): `python grafana/generate.py` writes
grafana/dashboards/*.json; a test fails when the committed JSON is not what this generates."""

from __future__ import annotations

import sys
from collections.abc import Callable, Sequence
from pathlib import Path
from typing import Any

from grafana_foundation_sdk.builders import common as common_builders
from grafana_foundation_sdk.builders import dashboard as dash
from grafana_foundation_sdk.builders import stat, statetimeline, table, timeseries
from grafana_foundation_sdk.builders.prometheus import Dataquery
from grafana_foundation_sdk.cog.encoder import JSONEncoder
from grafana_foundation_sdk.models import common
from grafana_foundation_sdk.models.dashboard import (
    DashboardSpecialValueMapOptions,
    DataSourceRef,
    DataTransformerConfig,
    SpecialValueMap,
    SpecialValueMatch,
    Threshold,
    ThresholdsMode,
    ValueMap,
    ValueMappingResult,
    VariableOption,
    VariableRefresh,
    VariableSort,
)

OUT = Path(__file__).parent / "dashboards"
DATASOURCE = DataSourceRef(type_val="prometheus", uid="${datasource}")
# Every per-account selector honours the template variables. `workspace` is only set in the
# several-workspaces form; its "All" (.*) also matches series without the label.
WS = 'workspace=~"$workspace"'
SEL = f'{WS}, platform=~"$platform", team=~"$team"'
ACCOUNT_SEL = f'{WS}, account_id=~"$account"'
# Join account_name from unipost_account_info (the ID when the name is not known yet).
NAMES = (
    'max by (workspace, account_id, account_name) (unipost_account_info{account_name!=""})'
    " or label_replace(max by (workspace, account_id, account_name)"
    ' (unipost_account_info{account_name=""}),'
    ' "account_name", "$1", "account_id", "(.+)")'
)


def names_where(selector: str) -> str:
    """NAMES restricted to the accounts matching `selector`."""
    return NAMES.replace("unipost_account_info{", "unipost_account_info{" + selector + ", ")


Panel = Any
Query = tuple[str, str]  # (expr, legend)


def query(expr: str, legend: str, ref_id: str, instant: bool = False) -> Dataquery:
    q = (
        Dataquery()
        .expr(expr)
        .legend_format(legend or "__auto")
        .ref_id(ref_id)
        .datasource(DATASOURCE)
    )
    if instant:
        q = q.instant().format("table")  # type: ignore[arg-type]
    return q


def thresholds(*steps: tuple[float | None, str]) -> dash.ThresholdsConfig:
    return (
        dash.ThresholdsConfig()
        .mode(ThresholdsMode.ABSOLUTE)
        .steps([Threshold(value=v, color=c) for v, c in steps])
    )


GREEN = thresholds((None, "green"))


def styled(
    panel: Any,
    title: str,
    description: str,
    unit: str,
    queries: Sequence[Query],
    limits: dash.ThresholdsConfig = GREEN,
    width: int = 12,
    height: int = 8,
    instant: bool = False,
) -> Panel:
    panel = (
        panel.title(title)
        .description(description)
        .unit(unit)
        .thresholds(limits)
        .datasource(DATASOURCE)
        .span(width)
        .height(height)
    )
    for ref_id, (expr, legend) in zip("ABCDEFGH", queries, strict=False):
        panel = panel.with_target(query(expr, legend, ref_id, instant))
    return panel


def series(title: str, description: str, unit: str, queries: Sequence[Query], **kw: Any) -> Panel:
    legend = (
        common_builders.VizLegendOptions()
        .display_mode(common.LegendDisplayMode.TABLE)
        .placement(common.LegendPlacement.BOTTOM)
        .show_legend(True)
        .calcs(["lastNotNull"])
    )
    return styled(
        timeseries.Panel().legend(legend).fill_opacity(10), title, description, unit, queries, **kw
    )


def big_number(
    title: str, description: str, unit: str, queries: Sequence[Query], **kw: Any
) -> Panel:
    reduce = common_builders.ReduceDataOptions().calcs(["lastNotNull"]).values(False)
    panel = stat.Panel().reduce_options(reduce).graph_mode(common.BigValueGraphMode.AREA)
    return styled(panel, title, description, unit, queries, **kw)


def instant_table(
    title: str,
    description: str,
    unit: str,
    queries: Sequence[Query],
    value_name: str,
    limits: dash.ThresholdsConfig = GREEN,
) -> Panel:
    """A table of one instant query's values, the value column named `value_name`."""
    return styled(
        table.Panel(), title, description, unit, queries, limits=limits, instant=True
    ).with_transformation(
        DataTransformerConfig(
            id_val="organize",
            options={"excludeByName": {"Time": True}, "renameByName": {"Value": value_name}},
        )
    )


def workspace_variable(metric: str) -> dash.QueryVariable:
    """The workspaces that `metric` has series of (All when the config has one)."""
    return (
        dash.QueryVariable("workspace")
        .label("Workspace")
        .description(
            "The exporter config's workspaces (several-workspaces form); All when it has one."
        )
        .datasource(DATASOURCE)
        .query(f"label_values({metric}, workspace)")
        .refresh(VariableRefresh.ON_TIME_RANGE_CHANGED)
        .sort(VariableSort.ALPHABETICAL_ASC)
        .multi(True)
        .include_all(True)
        .all_value(".*")
        .current(VariableOption(selected=True, text="All", value="$__all"))
    )


def variables(with_account: bool) -> list[Any]:
    out: list[Any] = [
        dash.DatasourceVariable("datasource").label("Data source").type("prometheus"),
        workspace_variable("unipost_account_info"),
        dash.QueryVariable("platform")
        .label("Platform")
        .datasource(DATASOURCE)
        .query(f"label_values(unipost_account_info{{{WS}}}, platform)")
        .refresh(VariableRefresh.ON_TIME_RANGE_CHANGED)
        .sort(VariableSort.ALPHABETICAL_ASC)
        .multi(True)
        .include_all(True)
        .all_value(".*"),
        dash.QueryVariable("team")
        .label("Team")
        .description("The static `team` label set in the exporter's config, where there is one.")
        .datasource(DATASOURCE)
        .query(f'label_values(unipost_account_info{{{WS}, platform=~"$platform"}}, team)')
        .refresh(VariableRefresh.ON_TIME_RANGE_CHANGED)
        .sort(VariableSort.ALPHABETICAL_ASC)
        .multi(True)
        .include_all(True)
        .all_value(".*"),
    ]
    if with_account:
        out.append(
            dash.QueryVariable("account")
            .label("Account")
            .description("Accounts by name, from unipost_account_info.")
            .datasource(DATASOURCE)
            .query(f"query_result({names_where(SEL)})")
            .regex('/account_id="(?<value>[^"]+)",\\s*account_name="(?<text>[^"]*)"/')
            .refresh(VariableRefresh.ON_TIME_RANGE_CHANGED)
            .sort(VariableSort.ALPHABETICAL_CASE_INSENSITIVE_ASC)
            .multi(True)
            .include_all(False)
        )
    return out


def base(
    uid: str, title: str, description: str, with_account: bool = False, chosen: Any = None
) -> dash.Dashboard:
    """A dashboard's header, with the account variables (or the `chosen` ones)."""
    board = (
        dash.Dashboard(title)
        .uid(uid)
        .description(description)
        .tags(["unipost", "unipost-exporter"])
        .refresh("1m")
        .time("now-7d", "now")
        .timezone("browser")
        .editable()
    )
    for variable in chosen if chosen is not None else variables(with_account):
        board = board.with_variable(variable)
    return board


def overview() -> dash.Dashboard:
    """Fleet health: statuses, failures, API errors, budget, staleness, followers."""
    status_colors = thresholds((None, "green"))
    return (
        base(
            "unipost-overview",
            "UniPost / Overview",
            "Health of every UniPost account the exporter polls, and of the exporter itself.",
            with_account=False,
        )
        .with_row(dash.Row("Accounts"))
        .with_panel(
            big_number(
                "Accounts by status",
                "How many accounts are in each status right now. Anything but ok means the "
                "account's values are frozen or missing: see the runbook for each status.",
                "short",
                [(f"count by (status) (unipost_account_status{{{SEL}}} == 1)", "{{status}}")],
                limits=status_colors,
                width=24,
                height=5,
            )
        )
        .with_panel(
            series(
                "Total followers by platform",
                "Sum of the last good follower counts. Zero-filled failure snapshots never count.",
                "short",
                [(f"sum by (platform) (unipost_account_followers{{{SEL}}})", "{{platform}}")],
            )
        )
        .with_panel(
            instant_table(
                "Stalest accounts",
                "Time since each account's last good snapshot, oldest first. Red: over 4 hours.",
                "s",
                [
                    (
                        f"sort_desc(topk(15, time() - max by (workspace, account_id, platform) "
                        f"(unipost_account_last_success_timestamp_seconds{{{SEL}}})))",
                        "{{account_id}}",
                    )
                ],
                "since last success",
                limits=thresholds((None, "green"), (3600, "yellow"), (14400, "red")),
            )
        )
        .with_row(dash.Row("Account health"))
        .with_panel(
            instant_table(
                "Tokens expiring soonest",
                "Time left before each account's platform token expires (token_expires_at from "
                "UniPost's account health), soonest first. Red: expired or within 7 days "
                "(UniPostAccountTokenExpiringSoon).",
                "s",
                [
                    (
                        f"sort(bottomk(15, max by (workspace, account_id, platform) "
                        f"(unipost_account_token_expiry_timestamp_seconds{{{SEL}}}) - time()))",
                        "{{account_id}}",
                    )
                ],
                "time left",
                limits=thresholds((None, "red"), (7 * 86400, "yellow"), (14 * 86400, "green")),
            )
        )
        .with_panel(
            series(
                "Publishing health by status",
                "Accounts by UniPost's publishing health: ok, degraded (a failure among the "
                "last 10 posts), disconnected.",
                "short",
                [
                    (
                        f"count by (status) (unipost_account_health_status{{{SEL}}} == 1)",
                        "{{status}}",
                    )
                ],
            )
        )
        .with_row(dash.Row("Failures"))
        .with_panel(
            series(
                "Zero-filled upstream failures per hour",
                "Snapshots UniPost returned with every count at 0 because the platform call "
                "failed, by platform and the platform's HTTP status. None became data.",
                "short",
                [
                    (
                        f"sum by (platform, upstream_status) "
                        f"(increase(unipost_upstream_failures_total{{{SEL}}}[1h]))",
                        "{{platform}} {{upstream_status}}",
                    )
                ],
                limits=thresholds((None, "green"), (1, "orange")),
            )
        )
        .with_panel(
            series(
                "UniPost API errors per hour by code",
                "Failed requests by UniPost error code, or TIMEOUT, CONNECTION_ERROR, "
                "INVALID_RESPONSE.",
                "short",
                [
                    (
                        f"sum by (code) (increase(unipost_api_errors_total{{{SEL}}}[1h]))",
                        "{{code}}",
                    )
                ],
                limits=thresholds((None, "green"), (1, "orange")),
            )
        )
        .with_row(dash.Row("UniPost API"))
        .with_panel(
            series(
                "Request rate by status",
                "Requests the exporter sends to UniPost, by HTTP status (error: no answer).",
                "reqps",
                [
                    (
                        "sum by (status_code) "
                        f"(rate(unipost_api_requests_total{{{WS}}}[$__rate_interval]))",
                        "{{status_code}}",
                    )
                ],
                width=8,
            )
        )
        .with_panel(
            series(
                "Request latency",
                "p50 and p95 of UniPost's answers, from the request-duration histogram. "
                "UniPost fetches live from the platform, so seconds are normal.",
                "s",
                [
                    (
                        "histogram_quantile(0.5, sum by (le) "
                        f"(rate(unipost_api_request_duration_seconds_bucket{{{WS}}}[$__rate_interval])))",
                        "p50",
                    ),
                    (
                        "histogram_quantile(0.95, sum by (le) "
                        f"(rate(unipost_api_request_duration_seconds_bucket{{{WS}}}[$__rate_interval])))",
                        "p95",
                    ),
                ],
                limits=thresholds((None, "green"), (5, "orange"), (10, "red")),
                width=8,
            )
        )
        .with_panel(
            series(
                "Rate limit and pace",
                "The workspace limiter's remaining requests (X-UniPost-RateLimit-Remaining), "
                "and the pace the exporter allows itself (lowered after 429s).",
                "short",
                [
                    (
                        f"max by (workspace) (unipost_api_ratelimit_remaining{{{WS}}})",
                        "remaining {{workspace}}",
                    ),
                    (
                        f"max by (workspace) (unipost_api_ratelimit_limit{{{WS}}})",
                        "limit {{workspace}}",
                    ),
                    (
                        f"max by (workspace) (unipost_exporter_budget_requests_per_minute{{{WS}}})",
                        "exporter pace / min {{workspace}}",
                    ),
                ],
                limits=thresholds((None, "red"), (1, "orange"), (10, "green")),
                width=8,
            )
        )
    )


def joined(metric: str, legend: str = "{{account_name}}") -> Query:
    return (
        f"{metric}{{{ACCOUNT_SEL}}}"
        f" * on (workspace, account_id) group_left (account_name) ({NAMES})",
        legend,
    )


ABSENT_NOTE = (
    "A count the platform does not provide is absent, never 0: see the panel "
    '"Why a count is missing".'
)
# Why each absent count is absent, from what the exporter exports: (series, count, reason).
_MISSING = (
    ('unipost_account_platform_flag{%s, field="hidden_subscriber_count"} == 1', "followers",
     "hidden by the channel"),
    ('unipost_account_platform_flag{%s, field="follower_count_supported"} == 0', "followers",
     "the platform does not provide it"),
    ('unipost_account_platform_flag{%s, field="following_count_supported"} == 0', "following",
     "the platform does not provide it"),
    ('unipost_account_platform_flag{%s, field="post_count_supported"} == 0', "posts",
     "the platform does not provide it"),
    ('unipost_account_info{%s, platform="threads"}', "following", "Threads does not provide it"),
    ('unipost_account_info{%s, platform="threads"}', "posts", "Threads does not provide it"),
)  # fmt: skip
MISSING_COUNT_REASONS = " or ".join(
    f'label_replace(label_replace({selector % ACCOUNT_SEL}, "count", "{count}", "", ""),'
    f' "reason", "{reason}", "", "")'
    for selector, count, reason in _MISSING
)


def missing_counts() -> Panel:
    """A table that says, per account, which counts are absent and why."""
    return styled(
        table.Panel(),
        "Why a count is missing",
        "Counts UniPost sends as 0 because the platform does not provide them are not "
        "exported: a YouTube channel's followers when it hides its subscribers, YouTube's "
        "following, Threads' following and posts. An account that is not listed here has "
        "every count.",
        "short",
        [(MISSING_COUNT_REASONS, "")],
        instant=True,
    ).with_transformation(
        DataTransformerConfig(
            id_val="organize",
            options={
                "excludeByName": {
                    "Time": True,
                    "Value": True,
                    "__name__": True,
                    "field": True,
                    "account_name": True,
                    "job": True,
                    "instance": True,
                },
                "indexByName": {"account_id": 0, "platform": 1, "count": 2, "reason": 3},
            },
        )
    )


def account() -> dash.Dashboard:
    """One account (or a few): values over time, growth, platform values, status, failures."""
    growth = thresholds((None, "red"), (0, "green"))
    return (
        base(
            "unipost-account",
            "UniPost / Account",
            "Followers, following and posts of the selected accounts, their growth, and their "
            "polling history.",
            with_account=True,
        )
        .with_row(dash.Row("Audience"))
        .with_panel(
            series(
                "Followers",
                "follower_count of each good snapshot. Gaps are polls that brought no data. "
                f"{ABSENT_NOTE}",
                "short",
                [joined("unipost_account_followers")],
                width=24,
            )
        )
        .with_panel(
            series(
                "Following",
                f"following_count of each good snapshot. {ABSENT_NOTE}",
                "short",
                [joined("unipost_account_following")],
            )
        )
        .with_panel(
            series(
                "Posts",
                f"Lifetime post count of each good snapshot. {ABSENT_NOTE}",
                "short",
                [joined("unipost_account_posts")],
            )
        )
        .with_row(dash.Row("Growth"))
        .with_panel(
            series(
                "Follower growth per day",
                "Followers gained in the last 24 hours (recording rule "
                "account:unipost_account_followers:delta1d; less than a day of history: so far).",
                "short",
                [joined("account:unipost_account_followers:delta1d")],
                limits=growth,
                width=6,
            )
        )
        .with_panel(
            series(
                "Follower growth per day (%)",
                "Followers gained in the last 24 hours, relative to the count a day ago.",
                "percentunit",
                [joined("account:unipost_account_followers:delta1d_ratio")],
                limits=growth,
                width=6,
            )
        )
        .with_panel(
            series(
                "Follower growth per week",
                "Followers gained in the last 7 days (recording rule "
                "account:unipost_account_followers:delta7d).",
                "short",
                [joined("account:unipost_account_followers:delta7d")],
                limits=growth,
                width=6,
            )
        )
        .with_panel(
            series(
                "Follower growth per week (%)",
                "Followers gained in the last 7 days, relative to the count a week ago.",
                "percentunit",
                [joined("account:unipost_account_followers:delta7d_ratio")],
                limits=growth,
                width=6,
            )
        )
        .with_row(dash.Row("Platform and polling"))
        .with_panel(
            series(
                "Platform-specific values",
                "Numeric platform_specific fields of the last good snapshot: listed_count and "
                "tweet_count on X, likes_count on TikTok, view_count on YouTube.",
                "short",
                [joined("unipost_account_platform_value", "{{account_name}} {{field}}")],
            )
        )
        .with_panel(missing_counts())
        .with_panel(
            series(
                "Platform flags",
                "Boolean platform_specific fields of the last good snapshot, 1 or 0 "
                "(unipost_account_platform_flag): hidden_subscriber_count (the channel hides its "
                "subscribers), following_count_supported, subscriber_count_rounded, "
                "post_count_public_only on YouTube.",
                "short",
                [joined("unipost_account_platform_flag", "{{account_name}} {{field}}")],
            )
        )
        .with_panel(
            styled(
                statetimeline.Panel().show_value(common.VisibilityMode.NEVER).merge_values(True),
                "Status history",
                "The account's status over time: ok, upstream_failing (zero-filled snapshots), "
                "error, disconnected, needs_reconnect, not_supported, not_found, unauthorized.",
                "short",
                [(f"unipost_account_status{{{ACCOUNT_SEL}}} == 1", "{{account_id}} {{status}}")],
            )
        )
        .with_panel(
            series(
                "Failures per hour",
                "Zero-filled upstream failures by the platform's status, and failed requests by "
                "UniPost error code.",
                "short",
                [
                    (
                        f"sum by (account_id, upstream_status) "
                        f"(increase(unipost_upstream_failures_total{{{ACCOUNT_SEL}}}[1h]))",
                        "{{account_id}} upstream {{upstream_status}}",
                    ),
                    (
                        f"sum by (account_id, code) "
                        f"(increase(unipost_api_errors_total{{{ACCOUNT_SEL}}}[1h]))",
                        "{{account_id}} {{code}}",
                    ),
                ],
                limits=thresholds((None, "green"), (1, "orange")),
            )
        )
        .with_row(dash.Row("Publishing health (UniPost)"))
        .with_panel(
            big_number(
                "Token expires in",
                "Time left before the platform token expires (token_expires_at); negative: "
                "expired. Reconnect the account in UniPost before it does.",
                "s",
                [joined("-time() + unipost_account_token_expiry_timestamp_seconds")],
                limits=thresholds((None, "red"), (7 * 86400, "yellow"), (14 * 86400, "green")),
                width=6,
            )
        )
        .with_panel(
            big_number(
                "Since last post",
                "Time since the account's last successful post through UniPost.",
                "s",
                [joined("time() - unipost_account_last_successful_post_timestamp_seconds")],
                width=6,
            )
        )
        .with_panel(
            styled(
                statetimeline.Panel().show_value(common.VisibilityMode.NEVER).merge_values(True),
                "Publishing health history",
                "UniPost's publishing health over time: ok, degraded, disconnected.",
                "short",
                [
                    (
                        f"unipost_account_health_status{{{ACCOUNT_SEL}}} == 1",
                        "{{account_id}} {{status}}",
                    )
                ],
            )
        )
        .with_panel(
            instant_table(
                "Last post error",
                "When the account's last failed post happened, and its category (the "
                "platform's message is on the exporter's landing page).",
                "dateTimeAsIso",
                [
                    (
                        f"max by (account_id, code) "
                        f"(unipost_account_last_post_error_timestamp_seconds{{{ACCOUNT_SEL}}}) "
                        "* 1000",
                        "{{account_id}} {{code}}",
                    )
                ],
                "when",
            )
        )
        .with_panel(
            big_number(
                "Since last good snapshot",
                "Time since the last good snapshot's fetched_at. Compare with the polling interval "
                "(unipost_account_poll_interval_seconds; 15 minutes on X).",
                "s",
                [
                    joined(
                        "time() - unipost_account_last_success_timestamp_seconds",
                        "{{account_name}}",
                    )
                ],
                limits=thresholds((None, "green"), (3600, "yellow"), (14400, "red")),
            )
        )
    )


# -- the workspace: plan usage, the publishing queue, engagement by platform ---------------------

WS_ONLY = f"{{{WS}}}"
PLATFORM_SEL = f'{WS}, platform=~"$platform"'
NOT_PROVIDED = "not provided"
# A cell with no value (a counter the platform does not provide) says so, never 0.
ABSENT_IS_NOT_PROVIDED = SpecialValueMap(
    DashboardSpecialValueMapOptions(SpecialValueMatch.NULL, ValueMappingResult(NOT_PROVIDED))
)
USED = f'sum without (state) (unipost_usage_posts{{{WS}, state=~"published|scheduled"}})'


def workspace_variables() -> list[Any]:
    return [
        dash.DatasourceVariable("datasource").label("Data source").type("prometheus"),
        workspace_variable("unipost_workspace_read_interval_seconds"),
        dash.QueryVariable("platform")
        .label("Platform")
        .description("Platforms with posts in UniPost's analytics window.")
        .datasource(DATASOURCE)
        .query(f"label_values(unipost_analytics_posts{{{WS}}}, platform)")
        .refresh(VariableRefresh.ON_TIME_RANGE_CHANGED)
        .sort(VariableSort.ALPHABETICAL_ASC)
        .multi(True)
        .include_all(True)
        .all_value(".*"),
    ]


def yes_or_no(
    title: str, description: str, expr: str, words: tuple[str, str], no_color: str
) -> Panel:
    """A stat of a 0-or-1 gauge, read as words (`words`: for 0, for 1)."""
    return (
        big_number(
            title,
            description,
            "short",
            [(expr, "")],
            limits=thresholds((None, no_color), (1, "green")),
            width=4,
            height=5,
        )
        .mappings([ValueMap({str(n): ValueMappingResult(word) for n, word in enumerate(words)})])
        .no_value(NOT_PROVIDED)
    )


def workspace() -> dash.Dashboard:
    """The workspace: usage against the plan's limit, the delivery queue, engagement."""
    board = base(
        "unipost-workspace",
        "UniPost / Workspace",
        "The UniPost workspace: this month's posts against the plan's limit, the "
        "publishing queue, and engagement by platform over the last 30 days' posts.",
        chosen=workspace_variables(),
    )
    return (
        board.with_row(dash.Row("Plan usage"))
        .with_panel(
            big_number(
                "Plan",
                "The workspace's UniPost plan (GET /v1/usage).",
                "short",
                [(f"unipost_plan_info{WS_ONLY}", "{{plan}}")],
                width=4,
                height=5,
            )
            .text_mode(common.BigValueTextMode.NAME)
            .no_value(NOT_PROVIDED)
        )
        .with_panel(
            big_number(
                "Share of the monthly limit",
                "Published plus scheduled posts this month over the plan's post limit. An "
                "unlimited plan (team, enterprise) has no limit: no value.",
                "percentunit",
                [(f"{USED} / unipost_plan_post_limit{WS_ONLY}", "")],
                limits=thresholds((None, "green"), (0.8, "yellow"), (1, "red")),
                width=4,
                height=5,
            ).no_value("no limit")
        )
        .with_panel(
            big_number(
                "Month resets in",
                "Time until this month's usage resets (resets_at: the first of the next "
                "month, UTC).",
                "s",
                [(f"unipost_usage_period_end_timestamp_seconds{WS_ONLY} - time()", "")],
                width=4,
                height=5,
            ).no_value(NOT_PROVIDED)
        )
        .with_panel(
            yes_or_no(
                "Scheduling",
                "Whether UniPost lets the workspace schedule more posts this month "
                "(scheduling_allowed; only the api, basic and growth plans are ever blocked).",
                f"unipost_usage_scheduling_allowed{WS_ONLY}",
                ("blocked", "allowed"),
                "red",
            )
        )
        .with_panel(
            yes_or_no(
                "Analytics",
                "Whether the plan includes analytics (UniPost answers 402 on the free plan; "
                "the exporter then asks again every 6 hours and when the plan changes).",
                f"unipost_analytics_available{WS_ONLY}",
                ("needs a paid plan", "available"),
                "yellow",
            ).span(8)
        )
        .with_panel(
            series(
                "Posts this month against the limit",
                "Published, scheduled and quota-held posts this UTC month, the plan's limit "
                "and its 80% (UniPostPlanLimitNear). The counts fall to 0 when the month "
                "resets.",
                "short",
                [
                    (f"unipost_usage_posts{WS_ONLY}", "{{state}}"),
                    (f"unipost_plan_post_limit{WS_ONLY}", "limit"),
                    (f"0.8 * unipost_plan_post_limit{WS_ONLY}", "80% of the limit"),
                ],
                width=24,
            )
        )
        .with_row(dash.Row("Publishing queue"))
        .with_panel(
            series(
                "Delivery jobs by state",
                "UniPost's publishing queue: pending, running, retrying and dead jobs "
                "(dead: failed for good, until retried or dismissed).",
                "short",
                [(f"unipost_delivery_jobs{WS_ONLY}", "{{state}}")],
                width=16,
            )
        )
        .with_panel(
            big_number(
                "Dead jobs",
                "Delivery jobs that failed for good: their posts did not reach the platform.",
                "short",
                [(f'unipost_delivery_jobs{{{WS}, state="dead"}}', "")],
                limits=thresholds((None, "green"), (1, "red")),
                width=4,
            ).no_value(NOT_PROVIDED)
        )
        .with_panel(
            big_number(
                "Recovered today",
                "Jobs that failed and then succeeded on a retry today.",
                "short",
                [(f"unipost_delivery_jobs_recovered_today{WS_ONLY}", "")],
                width=4,
            ).no_value(NOT_PROVIDED)
        )
        .with_row(dash.Row("Engagement by platform (posts created in the last 30 days)"))
        .with_panel(
            instant_table(
                "Engagement by platform",
                "Latest lifetime counters of the window's posts. A counter the platform "
                "does not provide reads 'not provided', never 0: Instagram has no "
                "impressions, only X, Threads and Pinterest do.",
                "short",
                [(f"unipost_analytics_engagement{{{PLATFORM_SEL}}}", "")],
                "value",
            )
            .with_transformation(
                DataTransformerConfig(
                    id_val="groupingToMatrix",
                    options={
                        "rowField": "platform",
                        "columnField": "metric",
                        "valueField": "value",
                        "emptyValue": "null",
                    },
                )
            )
            .mappings([ABSENT_IS_NOT_PROVIDED])
            .span(24)
        )
        .with_panel(
            series(
                "Impressions by platform",
                "Impressions of the window's posts, where the platform provides them (X, "
                "Threads, Pinterest). A dip that recovers within hours is UniPost writing "
                "zeros over a post after a platform error, not lost reach.",
                "short",
                [
                    (
                        f'unipost_analytics_engagement{{{PLATFORM_SEL}, metric="impressions"}}',
                        "{{platform}}",
                    )
                ],
            ).no_value(NOT_PROVIDED)
        )
        .with_panel(
            series(
                "Engagement rate where impressions are provided",
                "Interactions the platform provides over its impressions "
                "(platform:unipost_analytics_engagement_rate:ratio). UniPost's own rate "
                "divides every platform's interactions by three platforms' impressions.",
                "percentunit",
                [
                    (
                        f"platform:unipost_analytics_engagement_rate:ratio{{{PLATFORM_SEL}}}",
                        "{{platform}}",
                    )
                ],
            ).no_value(NOT_PROVIDED)
        )
        .with_panel(
            series(
                "Posts by platform",
                "Posts created in the last 30 days with results on each platform, and the "
                "window's posts by status.",
                "short",
                [
                    (f"unipost_analytics_posts{{{PLATFORM_SEL}}}", "{{platform}}"),
                    (f"unipost_analytics_window_posts{WS_ONLY}", "all platforms: {{status}}"),
                ],
            )
        )
        .with_panel(
            instant_table(
                "Analytics health by platform",
                "UniPost's analytics health per platform: ready, pending (no data yet), "
                "degraded (fetches fail), needs_reconnect, partial_reconnect_required, "
                "not_connected.",
                "short",
                [(f"unipost_analytics_platform_health{{{WS}}} == 1", "")],
                "current",
            )
        )
        .with_panel(
            instant_table(
                "Since UniPost's last analytics fetch",
                "Time since UniPost last fetched each platform's post counters (it refreshes "
                "hourly, 200 posts a run); absent when it never did.",
                "s",
                [(f"time() - unipost_analytics_last_fetch_timestamp_seconds{{{WS}}}", "")],
                "since last fetch",
                limits=thresholds((None, "green"), (7200, "yellow"), (86400, "red")),
            )
        )
        .with_row(dash.Row("Reads"))
        .with_panel(
            series(
                "Workspace reads: requests and errors",
                "Requests the exporter sent for the workspace reads, and their failures by "
                "code (unipost_workspace_read_errors_total).",
                "reqps",
                [
                    (
                        "sum by (endpoint) (rate(unipost_api_requests_total"
                        f'{{{WS}, endpoint=~"usage|delivery_jobs|analytics_.*"}}'
                        "[$__rate_interval]))",
                        "{{endpoint}}",
                    ),
                    (
                        "sum by (read, code) (rate(unipost_workspace_read_errors_total"
                        f"{WS_ONLY}[$__rate_interval]))",
                        "{{read}} error {{code}}",
                    ),
                ],
            )
        )
        .with_panel(
            instant_table(
                "Since each read's last success",
                "Time since each workspace read last succeeded; UniPostWorkspaceReadStale "
                "fires at three of its intervals.",
                "s",
                [
                    (
                        f"time() - unipost_workspace_read_last_success_timestamp_seconds{WS_ONLY}",
                        "{{read}}",
                    )
                ],
                "since last success",
                limits=thresholds((None, "green"), (1800, "yellow"), (7200, "red")),
            )
        )
    )


BOARDS: dict[str, Callable[[], dash.Dashboard]] = {
    "overview.json": overview,
    "account.json": account,
    "workspace.json": workspace,
}


def render() -> dict[str, str]:
    """File name -> JSON text of every dashboard."""
    encoder = JSONEncoder(sort_keys=True, indent=2)
    return {name: encoder.encode(build().build()) + "\n" for name, build in BOARDS.items()}


def main() -> int:
    OUT.mkdir(exist_ok=True)
    for name, text in render().items():
        (OUT / name).write_text(text)
        print(f"wrote {OUT / name}", file=sys.stderr)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
