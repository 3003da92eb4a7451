"""The poll queue hands out accounts in the order of their latest plans, whatever the mix of
plans, re-plans, removals and pops: as a single heap of every plan would."""

from __future__ import annotations

from types import SimpleNamespace
from typing import Any

from hypothesis import given, settings
from hypothesis import strategies as st

from exporter.pollqueue import METRICS_DUE, TICK, LoopSleep, PollQueue
from tests.helpers import FakeClock

IDS = [f"sa_{n}" for n in range(6)]
# Due times that share a tick, straddle ticks, repeat exactly, and reach far ahead.
DUES = st.sampled_from(
    [0.0, 0.25, 0.25, TICK * 0.999, TICK, 1.5 * TICK, 7 * TICK, 1e6]
) | st.floats(min_value=0, max_value=50 * TICK)
OPS = st.lists(
    st.one_of(
        st.tuples(st.just("plan"), st.sampled_from(IDS), DUES),
        st.tuples(st.just("forget"), st.sampled_from(IDS)),
        st.tuples(st.just("remove"), st.sampled_from(IDS)),
        st.tuples(st.just("pop")),
    ),
    max_size=60,
)


@settings(max_examples=500, deadline=None)
@given(OPS)
def test_accounts_come_out_in_the_order_of_their_latest_plans(ops: list[tuple[Any, ...]]) -> None:
    accounts: dict[str, Any] = {}
    queue = PollQueue(accounts, METRICS_DUE, LoopSleep(FakeClock()))  # type: ignore[arg-type]
    live: dict[str, float] = {}  # the model: each present account's latest plan
    for op in ops:
        if op[0] == "plan":
            _, account_id, due = op
            account = accounts.setdefault(
                account_id, SimpleNamespace(id=account_id, metrics_due=None)
            )
            queue.plan(account, due)
            live[account_id] = due
        elif op[0] == "forget" and op[1] in accounts:
            queue.forget(accounts[op[1]])
            live.pop(op[1], None)
        elif op[0] == "remove":
            accounts.pop(op[1], None)
            live.pop(op[1], None)
        assert queue.next_due() == (min(live.values()) if live else None)
        if op[0] == "pop" and live:
            expected = min((due, account_id) for account_id, due in live.items())[1]
            assert queue.pop() == expected
            del live[expected]
            assert not queue.planned(accounts[expected])
