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
import unicodedata
from dataclasses import dataclass

from django.db import connection
from django.db.models.expressions import RawSQL

from artifacts.search_index import (
    ENTRY_TABLE,
    FTS_TABLE,
    PREFIX_BYTES,
    checked_token,
    exact_tag,
    org_tag,
    prefix_tag,
    words,
)

MAX_SEARCH_TERMS = 8
_METADATA_KEY = re.compile(r"^[^\s=:]{1,128}$")


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
        equals_at, colon_at = token.find("="), token.find(":")
        split_at = min(at for at in (equals_at, colon_at, len(token)) if at >= 0)
        key, operator, value = token[:split_at], token[split_at : split_at + 1], token[split_at + 1 :]
        if operator == "=" and _METADATA_KEY.match(key):
            metadata.append((key, value))
        elif operator == ":" and _METADATA_KEY.match(key):
            prefixes.append((key, value))
        elif token:
            terms.append(token)
    return ArtifactSearch(terms=tuple(terms), metadata=tuple(metadata), prefixes=tuple(prefixes))


def _query_tokens(organization_id: str, search: ArtifactSearch) -> list[tuple[str, bool]]:
    """(token, is a prefix) pairs an entry must all hold."""
    wanted: list[tuple[str, bool]] = [(org_tag(organization_id), False)]
    for term in search.terms:
        wanted.extend((word, True) for word in words(term))
    for key, value in search.metadata:
        wanted.append((exact_tag(key, value), False))
    for key, value in search.prefixes:
        wanted.append((prefix_tag(key, value), True))
    return [(checked_token(token), prefix) for token, prefix in wanted]


def _fold(text: str) -> str:
    return unicodedata.normalize("NFKC", text).casefold()


def needs_recheck(search: ArtifactSearch) -> bool:
    """Whether a key:value start is longer than the index keeps, so rows found must be checked."""
    return any(len(_fold(value).encode()) > PREFIX_BYTES for _, value in search.prefixes)


def recheck(search: ArtifactSearch, metadata: dict) -> bool:
    return all(
        isinstance(metadata.get(key), str) and _fold(metadata[key]).startswith(_fold(value))
        for key, value in search.prefixes
    )


def _match_expression(tokens: list[tuple[str, bool]]) -> str:
    if connection.vendor == "postgresql":
        return " & ".join(f"'{token}':*" if prefix else f"'{token}'" for token, prefix in tokens)
    return " AND ".join(f'"{token}"*' if prefix else f'"{token}"' for token, prefix in tokens)


def matching_ids(organization_id: str, search: ArtifactSearch) -> RawSQL:
    """The ids of the organization's indexed artifacts that match, for ``id__in=``: for orders
    and views other than newest or oldest first, and searches narrowed by filters."""
    expression = _match_expression(_query_tokens(organization_id, search))
    if connection.vendor == "postgresql":
        return RawSQL(  # noqa: S611
            f"SELECT artifact_id FROM {ENTRY_TABLE} WHERE organization_id = %s AND document @@ %s::tsquery",  # noqa: S608
            [organization_id, expression],
        )
    return RawSQL(  # noqa: S611
        f"SELECT artifact_id FROM {ENTRY_TABLE} WHERE sort_key IN "  # noqa: S608
        f"(SELECT rowid FROM {FTS_TABLE} WHERE {FTS_TABLE} MATCH %s)",
        [expression],
    )


def matching_keys(
    organization_id: str, search: ArtifactSearch, *, newest_first: bool, after: int | None, limit: int
) -> list[int]:
    """Sort keys of matching entries in the order asked, after the key ``after``: a walk down the
    index that stops once ``limit`` are found."""
    expression = _match_expression(_query_tokens(organization_id, search))
    compare, direction = ("<", "DESC") if newest_first else (">", "ASC")
    if connection.vendor == "postgresql":
        sql = f"SELECT sort_key FROM {ENTRY_TABLE} WHERE organization_id = %s AND document @@ %s::tsquery"  # noqa: S608
        params: list = [organization_id, expression]
        key = "sort_key"
    else:
        sql = f"SELECT rowid FROM {FTS_TABLE} WHERE {FTS_TABLE} MATCH %s"  # noqa: S608
        params = [expression]
        key = "rowid"
    if after is not None:
        sql += f" AND {key} {compare} %s"
        params.append(after)
    sql += f" ORDER BY {key} {direction} LIMIT %s"
    params.append(limit)
    with connection.cursor() as cursor:
        cursor.execute(sql, params)
        return [row[0] for row in cursor.fetchall()]
