"""The search index: one entry per visible artifact, written in the same transaction as the change
that makes the artifact visible (publish) or invisible (delete, expiry).

An artifact's searchable text (its remote_path, metadata keys and values, sandbox and session ids)
is cut here into words: runs of letters and digits, case-folded, so ``claude-sonnet_4.json``
gives ``claude``, ``sonnet``, ``4``, ``json``. Each word goes in with its beginnings (``c``,
``cl``, … ``claude``, up to WORD_PREFIX_MAX characters; a longer word also whole), so that a
search for the start of a word is a lookup of one token, which both databases read in index order
and stop reading once a page is full; a prefix query (``claude*``, ``'claude':*``) would first
gather every match. Beside the words go tags, which start with ``~`` (a character no word holds,
so a word can never match a tag): the organization, each metadata entry whole (for
``key=value``) and each metadata key with each beginning of its value (for ``key:value``), up
to VALUE_PREFIX_MAX characters. The same tokens go to both databases, so a search means the same
on each:

* SQLite: an FTS5 table (``artifacts_search_fts``) whose rowid is the entry's ``sort_key``;
* PostgreSQL: a ``tsvector`` column of the entry made from the token array as it is (no parser
  in between), with a GIN index.

``sort_key`` orders entries as artifacts are listed, newest first: the creation time in
microseconds times 1024, plus a counter for artifacts made in the same microsecond. A page of
search results is then one walk down the index in rowid order, stopping after the page.
"""

from __future__ import annotations

import hashlib
import re
import unicodedata
from collections.abc import Iterable, Mapping
from datetime import UTC, datetime, timedelta

from django.db import connection
from django.db.models import Max

from artifacts.models import Artifact, ArtifactSearchEntry

FTS_TABLE = "artifacts_search_fts"
ENTRY_TABLE = "artifacts_artifactsearchentry"
_WORD = re.compile(r"[^\W_]+")
_TOKEN = re.compile(r"^(?:[^\W_]+|~[0-9a-z]+)$")
# A longer search word or key:value beginning is looked up by its first this many characters,
# and the rows found are checked for the rest.
WORD_PREFIX_MAX = 12
VALUE_PREFIX_MAX = 16
SLOTS = 1024
_EPOCH = datetime(1970, 1, 1, tzinfo=UTC)


def fold(text: str) -> str:
    return unicodedata.normalize("NFKC", text).casefold()


def words(text: str) -> list[str]:
    return _WORD.findall(fold(text))


def word_tokens(word: str) -> list[str]:
    tokens = [word[:length] for length in range(1, min(len(word), WORD_PREFIX_MAX) + 1)]
    return [*tokens, word] if len(word) > WORD_PREFIX_MAX else tokens


def org_tag(organization_id: str) -> str:
    return "~o" + hashlib.sha256(organization_id.encode()).hexdigest()[:24]


def exact_tag(key: str, value: str) -> str:
    return "~e" + hashlib.sha256(f"{key}\x00{value}".encode()).hexdigest()[:32]


def prefix_tag(key: str, folded_start: str) -> str:
    """The tag of a key and a beginning (case-folded, at most VALUE_PREFIX_MAX long) of its value."""
    return "~p" + hashlib.sha256(f"{key}\x00{folded_start}".encode()).hexdigest()[:24]


def document_tokens(
    *, organization_id: str, remote_path: str, metadata: Mapping[str, str], sandbox_id: str, session_id: str
) -> list[str]:
    found = set()
    for text in (remote_path, sandbox_id, session_id):
        found.update(words(text))
    tokens = {org_tag(organization_id)}
    for key, value in (metadata or {}).items():
        value = str(value)
        found.update(words(key))
        found.update(words(value))
        tokens.add(exact_tag(key, value))
        folded = fold(value)
        tokens.update(prefix_tag(key, folded[:length]) for length in range(min(len(folded), VALUE_PREFIX_MAX) + 1))
    for word in found:
        tokens.update(word_tokens(word))
    return sorted(tokens)


def artifact_tokens(artifact: Artifact) -> list[str]:
    return document_tokens(
        organization_id=artifact.organization_id,
        remote_path=artifact.remote_path,
        metadata=artifact.metadata or {},
        sandbox_id=artifact.sandbox_id,
        session_id=artifact.session_id,
    )


def sort_base(created_at: datetime) -> int:
    return ((created_at - _EPOCH) // timedelta(microseconds=1)) * SLOTS


def _free_sort_key(created_at: datetime, entry_model=ArtifactSearchEntry) -> int:
    base = sort_base(created_at)
    taken = entry_model.objects.filter(sort_key__gte=base, sort_key__lt=base + SLOTS).aggregate(top=Max("sort_key"))[
        "top"
    ]
    # Past the last slot of a crowded microsecond the next one's first slots are used.
    return base if taken is None else taken + 1


def _write_documents(rows: list[tuple[int, str, list[str]]]) -> None:
    """(sort_key, artifact id, tokens) of entries that exist, replacing what the index held for them."""
    if not rows:
        return
    with connection.cursor() as cursor:
        if connection.vendor == "sqlite":
            cursor.executemany(f"DELETE FROM {FTS_TABLE} WHERE rowid = %s", [(row[0],) for row in rows])  # noqa: S608
            cursor.executemany(
                f"INSERT INTO {FTS_TABLE} (rowid, artifact_id, body) VALUES (%s, %s, %s)",  # noqa: S608
                [(key, artifact_id, " ".join(tokens)) for key, artifact_id, tokens in rows],
            )
        elif connection.vendor == "postgresql":
            cursor.executemany(
                f"UPDATE {ENTRY_TABLE} SET document = array_to_tsvector(%s::text[]) WHERE sort_key = %s",  # noqa: S608
                [(tokens, key) for key, _, tokens in rows],
            )


def search_index_update(artifact: Artifact) -> None:
    """Index (again) one artifact that is visible; call inside the transaction that made it so."""
    key = ArtifactSearchEntry.objects.filter(artifact_id=artifact.id).values_list("sort_key", flat=True).first()
    if key is None:
        key = _free_sort_key(artifact.created_at)
        ArtifactSearchEntry.objects.create(
            artifact_id=artifact.id, organization_id=artifact.organization_id, sort_key=key
        )
    _write_documents([(key, artifact.id, artifact_tokens(artifact))])


def search_index_remove(artifact_ids: Iterable[str]) -> None:
    """Take artifacts out of the index; call inside the transaction that hides them."""
    ids = list(artifact_ids)
    if not ids:
        return
    entries = ArtifactSearchEntry.objects.filter(artifact_id__in=ids)
    if connection.vendor == "sqlite":
        keys = list(entries.values_list("sort_key", flat=True))
        with connection.cursor() as cursor:
            cursor.executemany(f"DELETE FROM {FTS_TABLE} WHERE rowid = %s", [(key,) for key in keys])  # noqa: S608
    entries.delete()


def search_index_add_many(artifacts: Iterable[Artifact], *, batch: int = 2000, entry_model=ArtifactSearchEntry) -> int:
    """Index many visible artifacts that have no entry yet, in batches: the upgrade's backfill
    (which passes its migration's model) and bulk loads. Rows should come oldest first, so that
    slots are found without a query each."""
    count = 0
    pending: list[Artifact] = []

    def flush() -> None:
        used: dict[int, int] = {}
        entries = []
        crowded = _crowded(pending)
        for artifact in pending:
            base = sort_base(artifact.created_at)
            if base not in used:
                used[base] = _free_sort_key(artifact.created_at, entry_model) if base in crowded else base
            else:
                used[base] += 1
            entries.append((artifact, used[base]))
        entry_model.objects.bulk_create(
            [entry_model(artifact_id=a.id, organization_id=a.organization_id, sort_key=k) for a, k in entries]
        )
        _write_documents([(key, artifact.id, artifact_tokens(artifact)) for artifact, key in entries])

    def _crowded(rows: list[Artifact]) -> set[int]:
        # Bases already holding an entry from an earlier batch or an earlier indexing.
        bases = {sort_base(a.created_at) for a in rows}
        low, high = min(bases), max(bases) + SLOTS
        taken = entry_model.objects.filter(sort_key__gte=low, sort_key__lt=high).values_list("sort_key", flat=True)
        return {key - key % SLOTS for key in taken} & bases

    for artifact in artifacts:
        pending.append(artifact)
        if len(pending) >= batch:
            flush()
            count += len(pending)
            pending = []
    if pending:
        flush()
        count += len(pending)
    return count


def checked_token(token: str) -> str:
    """A token as the query builders quote it: nothing else may reach MATCH or a tsquery."""
    if not _TOKEN.match(token):
        raise ValueError(f"not a search token: {token!r}")
    return token
