"""A bank statement's lines as read from any file, before they are matched to invoices."""

import hashlib
import re
from dataclasses import dataclass
from datetime import date
from decimal import Decimal

from app.money import ZERO
from app.services.errors import InvalidInput

EXTERNAL_PREFIX = "statement:"
MAX_STATEMENT_ROWS = 5000


class StatementError(InvalidInput):
    """A statement that cannot be read; `fields` names the file or each bad line."""


_SPACES = re.compile(r"\s+")


def normal_text(value: str) -> str:
    """Runs of blanks as one space, trimmed: the same line read twice compares equal."""
    return _SPACES.sub(" ", value).strip()


@dataclass(frozen=True)
class StatementLine:
    """One credit or debit of a statement, as read from its row."""

    line: int
    booked_on: date
    amount: Decimal
    counterparty: str
    text: str
    # The n-th line of the file with exactly these values: two identical transfers on one
    # day stay two payments, while the same file imported again maps onto the same ids.
    occurrence: int = 0
    # The bank's own id of the transaction (camt.053, Norma 43): the line's identity.
    bank_id: str = ""

    @property
    def outgoing(self) -> bool:
        """Money that left the account (or a zero line): never a payment received."""
        return self.amount <= ZERO

    @property
    def external_id(self) -> str:
        """A stable id of this line, so that importing it again records nothing new."""
        if self.bank_id:
            return EXTERNAL_PREFIX + hashlib.sha256(self.bank_id.encode("utf-8")).hexdigest()
        key = "|".join(
            (
                self.booked_on.isoformat(),
                f"{self.amount:.2f}",
                normal_text(self.counterparty),
                normal_text(self.text),
                str(self.occurrence),
            )
        )
        return EXTERNAL_PREFIX + hashlib.sha256(key.encode("utf-8")).hexdigest()
