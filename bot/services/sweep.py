"""Due leases, batch by batch: claim them under row locks, decide each in the claiming
transaction, end or change them there; the effects follow each batch's commit."""

from __future__ import annotations

import logging
from collections.abc import Callable

from bot.db.engine import Database, Session
from bot.db.sweeps import SweepRepo
from bot.domain.lease import Lease

log = logging.getLogger(__name__)
Claim = Callable[[SweepRepo, int], list[Lease]]  # (repo, limit) -> locked due leases


def sweep(db: Database, claim: Claim, decide: Callable[[Lease], object | None],
          act: Callable[[Session, list[tuple[Lease, object]]], None], *,
          batch_size: int) -> int:
    """Claim up to ``batch_size`` due leases per transaction; ``decide`` re-checks one
    after the lock (None: not due after all; it may change the lease), ``act`` ends or
    marks the decided ones. Returns how many were decided."""
    total = 0
    while True:
        def work(session: Session) -> tuple[int, int]:
            claimed = claim(SweepRepo(session), batch_size)
            decided: list[tuple[Lease, object]] = []
            for lease in claimed:
                try:
                    decision = decide(lease)
                except Exception:  # one bad row must not hold up the others
                    log.exception("lease %s: skipped by the lifecycle job", lease.id)
                    session.expunge(lease)  # write none of its half-made changes
                    continue
                if decision is not None:
                    decided.append((lease, decision))
            act(session, decided)
            return len(claimed), len(decided)

        claimed, decided = db.run(work)
        total += decided
        if claimed < batch_size or not decided:
            return total
