"""Reading the search index (artifacts/search_index.py): what a search box's text means, and the
queries that find the matching artifacts, complete and newest first.

``report model=claude owner:ali "two words"``: each plain word must be a word, or the start of
one, of the remote_path, a metadata key or value, the sandbox id or the session id;
``key=value`` must be a metadata entry exactly; ``key:value`` a metadata entry whose value starts
with ``value`` (case-insensitive). Everything is AND-ed. The user's text never reaches FTS5's MATCH
or a tsquery: only tokens made here do, each one checked and quoted.
"""

from __future__ import annotations

import re
import shlex
from dataclasses import dataclass

from django.db import connection
from django.db.models.expressions import RawSQL

from artifacts.search_index import (
    ENTRY_TABLE,
    FTS_TABLE,
    VALUE_PREFIX_MAX,
    WORD_PREFIX_MAX,
    checked_token,
    exact_tag,
    fold,
    org_tag,
    prefix_tag,
    words,
)

MAX_SEARCH_TERMS = 8
_METADATA_KEY = re.compile(r"^[^\s=]{1,128}$")


@dataclass(frozen=True)
class ArtifactSearch:
    terms: tuple[str, ...] = ()
    metadata: tuple[tuple[str, str], ...] = ()
    prefixes: tuple[tuple[str, str], ...] = ()

    def __bool__(self) -> bool:
        return bool(self.terms or self.metadata or self.prefixes)


def parse_search(text: str) -> ArtifactSearch:
    try:
        tokens = shlex.split(text)
    except ValueError:
        # An unbalanced quote: take the words as they are.
        tokens = text.split()
    terms: list[str] = []
    metadata: list[tuple[str, str]] = []
    prefixes: list[tuple[str, str]] = []
    for token in tokens[:MAX_SEARCH_TERMS]:
        key, equals, value = token.partition("=")
        if equals and _METADATA_KEY.match(key):
            # A key may hold a colon (k8s:namespace=prod): "=" decides first.
            metadata.append((key, value))
            continue
        key, colon, value = token.partition(":")
        if colon and _METADATA_KEY.match(key):
            prefixes.append((key, value))
        elif token:
            terms.append(token)
    return ArtifactSearch(terms=tuple(terms), metadata=tuple(metadata), prefixes=tuple(prefixes))


def _query_tokens(organization_id: str, search: ArtifactSearch, *, whole_long_words: bool) -> list[tuple[str, bool]]:
    """(token, is a prefix) pairs an entry must all hold. A word longer than the index keeps the
    beginnings of is a prefix query (``whole_long_words``), or the lookup of its beginning, with
    the rows found then checked by ``recheck``."""
    wanted: list[tuple[str, bool]] = [(org_tag(organization_id), False)]
    for term in search.terms:
        for word in words(term):
            if len(word) <= WORD_PREFIX_MAX:
                wanted.append((word, False))
            else:
                wanted.append((word, True) if whole_long_words else (word[:WORD_PREFIX_MAX], False))
    for key, value in search.metadata:
        wanted.append((exact_tag(key, value), False))
    for key, value in search.prefixes:
        wanted.append((prefix_tag(key, fold(value)[:VALUE_PREFIX_MAX]), False))
    return [(checked_token(token), prefix) for token, prefix in wanted]


def long_prefixes(search: ArtifactSearch) -> list[tuple[str, str]]:
    """The key:value searches whose value is longer than the index keeps the beginnings of."""
    return [(key, value) for key, value in search.prefixes if len(fold(value)) > VALUE_PREFIX_MAX]


def _long_words(search: ArtifactSearch) -> list[str]:
    return [word for term in search.terms for word in words(term) if len(word) > WORD_PREFIX_MAX]


def needs_recheck(search: ArtifactSearch) -> bool:
    return bool(long_prefixes(search) or _long_words(search))


def recheck(search: ArtifactSearch, artifact) -> bool:
    """Whether an artifact the index found for ``search`` matches it beyond what the index keeps."""
    metadata = artifact.metadata or {}
    for key, value in long_prefixes(search):
        if not (isinstance(metadata.get(key), str) and fold(metadata[key]).startswith(fold(value))):
            return False
    wanted = _long_words(search)
    if not wanted:
        return True
    held = set(words(artifact.remote_path)) | set(words(artifact.sandbox_id)) | set(words(artifact.session_id))
    for key, value in metadata.items():
        held.update(words(key))
        held.update(words(str(value)))
    return all(any(word.startswith(part) for word in held) for part in wanted)


def _match_expression(tokens: list[tuple[str, bool]]) -> str:
    if connection.vendor == "postgresql":
        return " & ".join(f"'{token}':*" if prefix else f"'{token}'" for token, prefix in tokens)
    return " AND ".join(f'"{token}"*' if prefix else f'"{token}"' for token, prefix in tokens)


def matching_ids(organization_id: str, search: ArtifactSearch) -> RawSQL:
    """The ids of the organization's indexed artifacts that match, for ``id__in=``: for orders
    and views other than newest or oldest first, and searches narrowed by filters. Long
    key:value searches still need their check (``long_prefixes``)."""
    expression = _match_expression(_query_tokens(organization_id, search, whole_long_words=True))
    if connection.vendor == "postgresql":
        return RawSQL(  # noqa: S611
            f"SELECT artifact_id FROM {ENTRY_TABLE} WHERE organization_id = %s AND document @@ %s::tsquery",  # noqa: S608
            [organization_id, expression],
        )
    return RawSQL(  # noqa: S611
        f"SELECT artifact_id FROM {FTS_TABLE} WHERE {FTS_TABLE} MATCH %s",  # noqa: S608
        [expression],
    )


def matching_keys(
    organization_id: str, search: ArtifactSearch, *, newest_first: bool, after: int | None, limit: int
) -> list[tuple[int, str]]:
    """(sort key, artifact id) of matching entries in the order asked, after the key ``after``: a
    walk down the index that stops once ``limit`` are found. Rows found need ``recheck`` when
    ``needs_recheck``."""
    expression = _match_expression(_query_tokens(organization_id, search, whole_long_words=False))
    if connection.vendor == "postgresql":
        return _matching_keys_postgresql(organization_id, expression, newest_first, after, limit)
    compare, direction = ("<", "DESC") if newest_first else (">", "ASC")
    sql = f"SELECT rowid, artifact_id FROM {FTS_TABLE} WHERE {FTS_TABLE} MATCH %s"  # noqa: S608
    params: list = [expression]
    if after is not None:
        sql += f" AND rowid {compare} %s"
        params.append(after)
    sql += f" ORDER BY rowid {direction} LIMIT %s"
    params.append(limit)
    with connection.cursor() as cursor:
        cursor.execute(sql, params)
        return [(row[0], row[1]) for row in cursor.fetchall()]


# PostgreSQL's estimate for a word it has no statistics on is far too high, so left to itself it
# walks the whole sort_key index for a rare word. The page is read in two steps instead: the
# newest (or oldest) WINDOW entries, tested in index order until the page is full (a common word
# fills it within a few rows); only if it is not, the GIN index for the rest, which then holds
# few matches (under LIMIT/WINDOW of them per entry), sorted.
PG_WINDOW = 2000


def _matching_keys_postgresql(
    organization_id: str, expression: str, newest_first: bool, after: int | None, limit: int
) -> list[tuple[int, str]]:
    compare, direction = ("<", "DESC") if newest_first else (">", "ASC")
    bound, params = "", [organization_id]
    if after is not None:
        bound, params = f" AND sort_key {compare} %s", [organization_id, after]
    window = (
        f"SELECT sort_key, artifact_id, document FROM {ENTRY_TABLE} WHERE organization_id = %s{bound} "  # noqa: S608
        f"ORDER BY sort_key {direction} LIMIT {PG_WINDOW}"
    )
    with connection.cursor() as cursor:
        # A subquery with a LIMIT keeps the match test outside it: the scan stops with the page.
        cursor.execute(
            f"SELECT sort_key, artifact_id FROM ({window}) w WHERE document @@ %s::tsquery "  # noqa: S608
            f"ORDER BY sort_key {direction} LIMIT %s",
            [*params, expression, limit],
        )
        found = [(row[0], row[1]) for row in cursor.fetchall()]
        if len(found) >= limit:
            return found
        cursor.execute(
            f"SELECT sort_key FROM {ENTRY_TABLE} WHERE organization_id = %s{bound} "  # noqa: S608
            f"ORDER BY sort_key {direction} OFFSET {PG_WINDOW - 1} LIMIT 1",
            params,
        )
        edge = cursor.fetchone()
        if edge is None:
            return found
        cursor.execute(
            f"WITH m AS MATERIALIZED (SELECT sort_key, artifact_id FROM {ENTRY_TABLE} "  # noqa: S608
            f"WHERE organization_id = %s AND document @@ %s::tsquery AND sort_key {compare} %s) "
            f"SELECT sort_key, artifact_id FROM m ORDER BY sort_key {direction} LIMIT %s",
            [organization_id, expression, edge[0], limit - len(found)],
        )
        return found + [(row[0], row[1]) for row in cursor.fetchall()]
