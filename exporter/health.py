"""Account health reads (GET /v1/accounts/{id}/health): UniPost's database, no platform call.

They run on their own cadence (`health_interval`), take the workspace budget's slots when no
metrics poll is due, and stretch with the same factor. A 401 or 404 is the same news as from
a metrics poll; any other failure waits for the next read.
"""

from __future__ import annotations

from exporter.accounts import count_error
from exporter.parse import ApiError, ErrorKind, Health, classify_health
from exporter.pollqueue import HEALTH_DUE
from exporter.reads import AccountRead
from exporter.store import AccountState


class HealthRead(AccountRead[Health]):
    """Each account's publishing health, every `health_interval`."""

    name = "health"
    due = HEALTH_DUE

    def interval(self, account: AccountState) -> float:
        own = account.config.health_interval
        return own if own is not None else self.context.polling.health_interval

    async def fetch(self, account: AccountState) -> Health | ApiError:
        raw = await self.context.client.get_account_health(account.id)
        outcome = raw.read(classify_health)
        self.context.budget.learn(raw, outcome)
        return outcome

    def apply(self, account: AccountState, outcome: Health | ApiError) -> None:
        if isinstance(outcome, Health):
            account.health = outcome
            return
        context = self.context
        count_error(account, outcome, "health read failed", context.store, context.log)
        if outcome.kind in (ErrorKind.AUTH, ErrorKind.NOT_FOUND):
            # The same news as from a metrics poll: the key is rejected (the workspace
            # pauses), or the account is gone.
            account.health = None
            context.account_news(account, outcome)
        # Other failures wait for the next health slot.

    def has_answer(self, account: AccountState) -> bool:
        return account.health is not None

    def stopped(self, account: AccountState) -> None:
        account.health = None  # no longer read: its series go
