"""Checking the audit chains: the shared chain of earlier releases' events, then each
organization's and the instance's, one by one, each walked in insertion order from where it began
and held to its head row."""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass
from datetime import datetime

from audit.chain import GENESIS_HASH, SharedChain, chain_key, event_hash, shared_chain
from audit.models import AuditChain, AuditEvent

# The name reports give the closed chain every event joined before the per-organization chains.
SHARED_CHAIN = "shared"
_EDITED = "its content no longer matches its hash (it was edited)"
_UNLINKED = "its link to the previous event is broken (an event before it was deleted, inserted or reordered)"


@dataclass(frozen=True)
class ChainReport:
    """What a walk of a chain found: how many events it verified and over what time, the head
    it ended at, and the first broken link when there is one."""

    ok: bool
    checked: int
    first_bad_event_id: str | None = None
    problem: str = ""
    first_timestamp: datetime | None = None
    last_timestamp: datetime | None = None
    head_seq: int = 0
    head_hash: str = GENESIS_HASH
    # Of the events checked, those of the organization that asked (the shared chain spans them all).
    organization_checked: int = 0
    # Which chain: "shared", an organization's id or "instance"; empty for all of them together.
    chain: str = ""


class _Walk:
    """One pass along events in chain order from a known hash, stopping at the first bad link.
    It notes the hashes it passed at the seqs in ``starts`` (where other chains began)."""

    def __init__(self, *, prev: str, organization_id: str | None = None, starts: frozenset[int] = frozenset()) -> None:
        self.prev, self.head_seq = prev, 0
        self.organization_id = organization_id
        self.checked = self.mine = 0
        self.first: datetime | None = None
        self.last: datetime | None = None
        self.starts = starts
        self.hash_at: dict[int, str] = {0: GENESIS_HASH}
        self.whole = False

    def run(self, events: Iterable[AuditEvent], *, key: str | None = None) -> tuple[str, str] | None:
        """None when every event links to the one before; else the bad event's id and what is wrong.
        With ``key``, every event must be of that chain's organization."""
        for event in events:
            if event.prev_hash != self.prev:
                return event.id, _UNLINKED
            if event_hash(event) != event.hash:
                return event.id, _EDITED
            if key is not None and chain_key(event.organization_id) != key:
                return event.id, "it is in the chain of another organization than its own"
            self.prev, self.head_seq = event.hash, event.seq
            if event.seq in self.starts:
                self.hash_at[event.seq] = event.hash
            self.first = self.first or event.timestamp
            self.last = event.timestamp
            self.checked += 1
            self.mine += self.organization_id is not None and event.organization_id == self.organization_id
        return None

    def report(self, chain: str, *, bad: str | None = None, problem: str = "") -> ChainReport:
        return ChainReport(
            not problem,
            self.checked,
            first_bad_event_id=bad,
            problem=problem,
            first_timestamp=self.first,
            last_timestamp=self.last,
            head_seq=self.head_seq,
            head_hash=self.prev,
            organization_checked=self.mine,
            chain=chain,
        )


def _in_order(events) -> Iterable[AuditEvent]:
    return events.order_by("seq").iterator(chunk_size=2000)


def _verify_shared(shared: SharedChain, walk: _Walk) -> ChainReport:
    found = walk.run(_in_order(AuditEvent.objects.filter(chain="")))
    if found:
        return walk.report(SHARED_CHAIN, bad=found[0], problem=found[1])
    if walk.prev != shared.last_hash:
        return walk.report(SHARED_CHAIN, problem="the newest events are missing (the log was truncated)")
    walk.whole = True
    return walk.report(SHARED_CHAIN)


def _verify_own(key: str, head: AuditChain | None, walk: _Walk, shared: _Walk) -> ChainReport:
    """One chain, from where it began on the shared chain to its head row."""
    events = _in_order(AuditEvent.objects.filter(chain=key))
    if head is None:
        first = next(iter(events), None)
        if first is None:
            return walk.report(key)
        return walk.report(key, bad=first.id, problem="the head of its chain is missing (the log was altered)")
    walk.prev = head.start_hash
    if shared.whole and shared.hash_at.get(head.start_seq) != head.start_hash:
        return walk.report(key, problem=f"it does not begin on the shared chain (at seq {head.start_seq})")
    found = walk.run(events, key=key)
    if found:
        return walk.report(key, bad=found[0], problem=found[1])
    if head.last_hash != walk.prev:
        return walk.report(key, problem="the newest events are missing (the log was truncated)")
    return walk.report(key)


def _orphan(keys: set[str]) -> AuditEvent | None:
    """The first event in a chain that has no head row."""
    return AuditEvent.objects.exclude(chain="").exclude(chain__in=keys).order_by("seq").first()


def audit_verify_chains(*, organization_id: str | None = None, instance: bool = False) -> list[ChainReport]:
    """The shared chain's report, then each chain's: every chain, or only the chain of the
    organization named (``instance`` for the chain of events of no organization)."""
    if organization_id is not None or instance:
        key = chain_key(organization_id)
        heads = {key: AuditChain.objects.filter(key=key).first()}
    else:
        heads = {head.key: head for head in AuditChain.objects.order_by("key")}
    shared = _Walk(prev=GENESIS_HASH, starts=frozenset(head.start_seq for head in heads.values() if head))
    reports = [_verify_shared(shared_chain(), shared)]
    for key, head in heads.items():
        reports.append(_verify_own(key, head, _Walk(prev=GENESIS_HASH), shared))
    if organization_id is None and not instance:
        orphan = _orphan(set(heads))
        if orphan is not None:
            reports.append(
                ChainReport(
                    False,
                    0,
                    first_bad_event_id=orphan.id,
                    problem="the head of its chain is missing (the log was altered)",
                    chain=orphan.chain,
                )
            )
    return reports


def audit_verify_chain(*, organization_id: str | None = None) -> ChainReport:
    """One report for an organization's chain from its start (the shared chain, then its own), or,
    with no organization, for every chain: the first broken one's, or the totals when all hold."""
    if organization_id is not None:
        head = AuditChain.objects.filter(key=organization_id).first()
        starts = frozenset({head.start_seq} if head else ())
        shared = _Walk(prev=GENESIS_HASH, organization_id=organization_id, starts=starts)
        first = _verify_shared(shared_chain(), shared)
        if not first.ok:
            return first
        # One walk on from the shared chain's, so the counts cover both.
        return _verify_own(organization_id, head, shared, shared)
    reports = audit_verify_chains()
    broken = next((report for report in reports if not report.ok), None)
    if broken is not None:
        return broken
    last = reports[-1]
    return ChainReport(
        True,
        sum(report.checked for report in reports),
        first_timestamp=min((r.first_timestamp for r in reports if r.first_timestamp), default=None),
        last_timestamp=max((r.last_timestamp for r in reports if r.last_timestamp), default=None),
        head_seq=max(report.head_seq for report in reports),
        head_hash=last.head_hash,
    )
