"""Where an edition stands for its readers, counted without changing anything (Queue.backlog), and
two editions' counts together (the day's and the week's, sent by one run)."""
from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime


@dataclass(frozen=True)
class Backlog:
    """Where an edition stands for its active subscribers, read without changing anything."""

    new: int  # active subscribers with no row for this edition yet
    due: int  # pending or deferred, and due now
    in_flight: int  # leased: being sent, or held by a worker that died (until its lease expires)
    sent: int
    owed: int  # pending + deferred: what the edition still owes (due now or later), besides what is in flight
    next_due: datetime | None
    waiting: int = 0  # of what is owed, the rows never tried that wait for their reader's hour: the plan

    @property
    def unsent(self) -> int:
        """Of what is owed, what is not merely waiting for its hour: deferred, or due and not sent."""
        return self.owed - self.waiting

    @property
    def would_send(self) -> int:
        """What a run started now would send."""
        return self.new + self.due + self.in_flight

    @property
    def idle(self) -> bool:
        return self.would_send == 0

    def __add__(self, other: Backlog) -> Backlog:
        """Two editions' backlogs together (the day's and the week's, sent by one run)."""
        dues = [t for t in (self.next_due, other.next_due) if t is not None]
        return Backlog(self.new + other.new, self.due + other.due, self.in_flight + other.in_flight,
                       self.sent + other.sent, self.owed + other.owed, min(dues) if dues else None,
                       self.waiting + other.waiting)
