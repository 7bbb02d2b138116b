#!/usr/bin/env python3
"""What the dashboard's artifacts page costs when an organization has a million artifacts (SQLite).

Reuses bench/list.py's database: built once and cached under ``var/bench/`` (a million ready
artifacts of one organization plus a few thousand of a second), copied into a temporary var dir.
Times ``GET /artifacts/`` handled in-process by Django (``django.test.Client``, signed in with
``force_login`` as a member of the organization: session, membership, the query, the template),
interleaved, for:

  * the first page;
  * a search (``?q=``) for a word in many remote paths, and one for a word in a handful;
  * a content-type filter (``?content_type=``) and a narrow folder filter (``?path=``);
  * the htmx "Load more" fragment (``HX-Request``, ``HX-Target: artifact-more``) for page 2,
    following the page's own link, and for a page ``--depth`` pages deep;

against a baseline measured in the same run: the same pages for an organization with 100 artifacts.

Target: first page and a filtered search each <= 100 ms median server time.

``--database-url postgres://USER@HOST:PORT/NAME`` runs it on PostgreSQL with bench/list.py's
PostgreSQL dataset (the database NAME is created, from list.py's cached template if there is one,
and dropped at the end; see bench/list.py).

    .venv/bin/python bench/dashboard.py [--rows 1000000] [--runs 30] [--warmup 3] [--depth 10000] [--rebuild] [--database-url URL] [--json]
"""

from __future__ import annotations

import argparse
import html
import importlib.util
import json
import random
import re
import shutil
import sqlite3
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))


def _load_list_bench():
    # bench/ is not a package, and "list" is a builtin's name: load it under a name of its own.
    spec = importlib.util.spec_from_file_location("stowage_bench_list", Path(__file__).resolve().parent / "list.py")
    module = importlib.util.module_from_spec(spec)
    sys.modules[spec.name] = module
    spec.loader.exec_module(module)
    return module


listbench = _load_list_bench()

TARGET_MS = 100.0
SMALL_ORG = "bench-dashboard-small"
SMALL_ROWS = 100
_ROW = re.compile(r'<a href="/artifacts/(art_[0-9a-z]+)/" class="path">')
_NEXT = re.compile(r'<tr id="artifact-more"[^>]*>.*?hx-get="([^"]+)"', re.S)


def rows_of(body: str) -> list[str]:
    return _ROW.findall(body)


def next_link(body: str) -> str | None:
    found = _NEXT.search(body)
    return html.unescape(found.group(1)) if found else None


def prepare_database(var_dir: Path, rows: int, second_rows: int, *, rebuild: bool, quiet: bool) -> dict[str, object]:
    """bench/list.py's cached database in ``var_dir`` (built there first if there is none yet)."""
    cached = listbench.CACHE_DIR / f"list-{rows}-{second_rows}.sqlite3"
    db_path = var_dir / "stowage.sqlite3"
    if cached.exists() and not rebuild:
        started = time.perf_counter()
        shutil.copyfile(cached, db_path)
        copy_s = time.perf_counter() - started
        listbench._django_setup(var_dir)
        from django.core.management import call_command
        from django.db import connection
        from django.db.migrations.recorder import MigrationRecorder

        applied = set(MigrationRecorder(connection).applied_migrations())
        call_command("migrate", "--noinput", verbosity=0)  # a no-op unless new migrations arrived
        if set(MigrationRecorder(connection).applied_migrations()) != applied:
            connection.close()
            listbench.store_cache(db_path, cached)
            if not quiet:
                print(f"applied new migrations; refreshed {cached}", file=sys.stderr)
        return {
            "cached_file": str(cached),
            "built_now": None,
            "copy_s": round(copy_s, 1),
            "sqlite_version": sqlite3.sqlite_version,
        }
    listbench._django_setup(var_dir)
    info = listbench.build_database(db_path, rows, second_rows)
    listbench.store_cache(db_path, cached)
    if not quiet:
        print(f"built {rows:,} + {second_rows:,} rows in {info['total_s']} s; cached as {cached}", file=sys.stderr)
    return {"cached_file": str(cached), "built_now": info, "copy_s": 0.0, "sqlite_version": sqlite3.sqlite_version}


def measure(runs: int, warmup: int, depth: int) -> dict[str, object]:
    from django.contrib.auth import get_user_model
    from django.db import connection
    from django.test import Client

    from accounts.models import Membership, Organization, Role
    from accounts.services import organization_bootstrap
    from artifacts.models import Artifact, new_artifact_id
    from artifacts.selectors import _encode_sort_cursor, artifact_list
    from artifacts.views import PAGE_SIZE

    User = get_user_model()
    large = Organization.objects.get(name=listbench.LARGE_ORG)
    # The baseline: an organization with 100 artifacts, copies of the large one's newest.
    small, _, _, small_key, _ = organization_bootstrap(
        org_name=SMALL_ORG, email="small@dashboard.bench.test", username="bench-dashboard-small"
    )
    template = list(artifact_list(organization_id=large.id)[:SMALL_ROWS])
    for artifact in template:
        artifact.id = new_artifact_id()
        artifact.organization_id = small.id
        artifact.storage_key = f"blobs/{small.id}/{artifact.id}"
        artifact.created_by_api_key_id = small_key.id
    Artifact.objects.bulk_create(template)

    def member_client(org: Organization, username: str) -> Client:
        user = User.objects.create_user(username=username, password=None)
        Membership.objects.create(user=user, organization=org, role=Role.MEMBER)
        client = Client()
        client.force_login(user)
        return client

    large_client = member_client(large, "bench-dashboard-member")
    small_client = member_client(small, "bench-dashboard-small-member")

    base = artifact_list(organization_id=large.id)
    total = base.count()
    offset = depth * PAGE_SIZE
    if offset >= total:
        raise SystemExit(f"--depth {depth} pages of {PAGE_SIZE} is past the {total} artifacts")
    boundary = base[offset - 1]  # the last row of page `depth`: its cursor opens page depth+1
    deep_cursor = _encode_sort_cursor([boundary.created_at, boundary.id], "newest")
    deep_first = base.values_list("id", flat=True)[offset]
    newest = base.first()
    # Words as a user would type them: a top-level folder (about one path in twenty) and the
    # file name of one path (its few versions among a million rows, none of them recent).
    sample = base[offset + 7]
    broad_word = newest.remote_path.split("/", 1)[0]
    rare_word = sample.remote_path.rsplit("/", 1)[1]
    narrow_path = sample.remote_path.rsplit("/", 1)[0] + "/"  # one run's folder: a handful of rows
    content_type = "text/csv"
    counts = {
        "search_broad": base.filter(remote_path__icontains=broad_word).count(),
        "search_rare": base.filter(remote_path__icontains=rare_word).count(),
        "content_type": base.filter(content_type=content_type).count(),
        "path_narrow": base.filter(remote_path__startswith=narrow_path).count(),
    }

    htmx = {
        "HTTP_HX_REQUEST": "true",
        "HTTP_HX_TARGET": "artifact-more",
        "HTTP_HX_CURRENT_URL": "http://testserver/artifacts/",
    }

    def first_next(client: Client) -> str:
        link = next_link(client.get("/artifacts/").content.decode())
        if not link:
            raise RuntimeError("the first page has no Load more link")
        return link

    large_page2, small_page2 = first_next(large_client), first_next(small_client)

    def get(
        client: Client,
        url: str,
        params: dict[str, str] | None = None,
        *,
        headers: dict[str, str] | None = None,
        rows: int | None = None,
        first: str | None = None,
        min_rows: int = 0,
    ):
        def run() -> float:
            started = time.perf_counter()
            response = client.get(url, params or {}, **(headers or {}))
            elapsed = (time.perf_counter() - started) * 1000
            if response.status_code != 200:
                raise RuntimeError(f"GET {url} {params}: {response.status_code} {response.content[:300]!r}")
            found = rows_of(response.content.decode())
            if rows is not None and len(found) != rows:
                raise RuntimeError(f"GET {url} {params}: {len(found)} rows, expected {rows}")
            if len(found) < min_rows:
                raise RuntimeError(f"GET {url} {params}: {len(found)} rows, expected at least {min_rows}")
            if first is not None and found[0] != first:
                raise RuntimeError(f"GET {url}: the page starts at {found[0]}, OFFSET says {first}")
            return elapsed

        return run

    cases: dict[str, tuple[str, object]] = {
        "first_page": ("GET /artifacts/ (first page)", get(large_client, "/artifacts/", rows=PAGE_SIZE)),
        "search_broad": (
            f"GET ?q={broad_word} ({counts['search_broad']:,} matches)",
            get(large_client, "/artifacts/", {"q": broad_word}, rows=PAGE_SIZE),
        ),
        "search_rare": (
            f"GET ?q={rare_word} ({counts['search_rare']} matches)",
            get(large_client, "/artifacts/", {"q": rare_word}),
        ),
        "content_type": (
            f"GET ?content_type={content_type}",
            get(large_client, "/artifacts/", {"content_type": content_type}, rows=PAGE_SIZE),
        ),
        "path_narrow": (
            f"GET ?path=<one run's folder> ({counts['path_narrow']} matches)",
            get(large_client, "/artifacts/", {"path": narrow_path}, min_rows=1),
        ),
        "load_more_page2": ("htmx Load more: page 2", get(large_client, large_page2, headers=htmx, rows=PAGE_SIZE)),
        "load_more_deep": (
            f"htmx Load more: page {depth + 1:,} ({offset:,} rows in)",
            get(large_client, "/artifacts/", {"cursor": deep_cursor}, headers=htmx, rows=PAGE_SIZE, first=deep_first),
        ),
        "baseline_first_page": (
            "baseline: first page (100-artifact org)",
            get(small_client, "/artifacts/", rows=PAGE_SIZE),
        ),
        "baseline_search_broad": (
            f"baseline: ?q={broad_word} (100-artifact org)",
            get(small_client, "/artifacts/", {"q": broad_word}, min_rows=1),
        ),
        "baseline_search_rare": (
            f"baseline: ?q={rare_word} (100-artifact org)",
            get(small_client, "/artifacts/", {"q": rare_word}),
        ),
        "baseline_content_type": (
            "baseline: ?content_type= (100-artifact org)",
            get(small_client, "/artifacts/", {"content_type": content_type}, min_rows=1),
        ),
        "baseline_path_narrow": (
            "baseline: ?path=<same folder> (100-artifact org)",
            get(small_client, "/artifacts/", {"path": narrow_path}),
        ),
        "baseline_load_more": (
            "baseline: Load more page 2 (100-artifact org)",
            get(small_client, small_page2, headers=htmx, rows=SMALL_ROWS - PAGE_SIZE),
        ),
    }
    against = {
        "first_page": "baseline_first_page",
        "search_broad": "baseline_search_broad",
        "search_rare": "baseline_search_rare",
        "content_type": "baseline_content_type",
        "path_narrow": "baseline_path_narrow",
        "load_more_page2": "baseline_load_more",
        "load_more_deep": "baseline_load_more",
    }
    samples: dict[str, list[float]] = {key: [] for key in cases}
    order = list(cases)
    rng = random.Random(11)
    for i in range(warmup + runs):
        rng.shuffle(order)  # interleaved, in a new order every round
        for key in order:
            elapsed = cases[key][1]()
            if i >= warmup:
                samples[key].append(elapsed)

    # A search reads a bounded window of artifacts per request; a word found only deep down takes
    # many "Search further" requests. Follow them once, as a user clicking would, until a row shows.
    walk_started = time.perf_counter()
    walk_requests, walk_found, url, params = 0, [], "/artifacts/", {"q": rare_word}
    while walk_requests < 1000:
        body = large_client.get(url, params).content.decode()
        walk_requests += 1
        walk_found = rows_of(body)
        if walk_found:
            break
        link = re.search(r'<a class="button" href="(/artifacts/\?[^"]+)"', body)
        if not link:
            break
        url, params = html.unescape(link.group(1)), None
    rare_walk = {
        "requests": walk_requests,
        "found": len(walk_found),
        "total_ms": round((time.perf_counter() - walk_started) * 1000, 1),
    }

    queries: dict[str, int] = {}
    from django.test.utils import CaptureQueriesContext

    for key in ("first_page", "search_broad", "search_rare", "content_type", "path_narrow", "load_more_deep"):
        with CaptureQueriesContext(connection) as captured:
            cases[key][1]()
        queries[key] = len(captured.captured_queries)
    connection.close()

    results = {key: {"label": cases[key][0], **listbench.summary(values)} for key, values in samples.items()}
    for key, base_key in against.items():
        base_ms = results[base_key]["median_ms"]
        results[key]["ratio"] = round(results[key]["median_ms"] / base_ms, 2) if base_ms else None
    checked = (
        "first_page",
        "search_broad",
        "search_rare",
        "content_type",
        "path_narrow",
        "load_more_page2",
        "load_more_deep",
    )
    return {
        "rows": total,
        "small_org_rows": SMALL_ROWS,
        "page_size": PAGE_SIZE,
        "runs": runs,
        "warmup": warmup,
        "depth_pages": depth,
        "depth_rows": offset,
        "words": {"broad": broad_word, "rare": rare_word, "path": narrow_path},
        "matches": counts,
        "queries_per_request": queries,
        "search_rare_walk": rare_walk,
        "results": results,
        "target_ms": TARGET_MS,
        "meets_target": {
            key: results[key]["median_ms"] <= TARGET_MS for key in ("first_page", "search_broad", "search_rare")
        },
        "within_target": {key: results[key]["median_ms"] <= TARGET_MS for key in checked},
    }


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--rows", type=int, default=1_000_000, help="artifacts of the large organization")
    parser.add_argument("--second-org-rows", type=int, default=5_000)
    parser.add_argument("--depth", type=int, default=10_000, help="how many pages of 50 deep the deep Load more is")
    parser.add_argument("--runs", type=int, default=30)
    parser.add_argument("--warmup", type=int, default=3)
    parser.add_argument("--rebuild", action="store_true", help="build the database even if a cached one exists")
    parser.add_argument(
        "--database-url",
        help="PostgreSQL, e.g. postgres://postgres@127.0.0.1:5432/stowage_bench (a dedicated database: "
        "created and dropped by the script); default: SQLite",
    )
    parser.add_argument("--json", action="store_true", help="print the numbers as JSON")
    args = parser.parse_args()
    if args.runs < 1 or args.warmup < 0 or args.rows < 1000 or args.depth < 1:
        parser.error("--runs must be at least 1, --warmup at least 0, --rows at least 1000 and --depth at least 1")

    with tempfile.TemporaryDirectory(prefix="stowage-bench-dashboard-", ignore_cleanup_errors=True) as tmp:
        var_dir = Path(tmp) / "var"
        var_dir.mkdir()
        if args.database_url:
            listbench.pg_split(args.database_url)  # refuses a shared database's name before anything is dropped
            database = listbench.pg_prepare(
                args.database_url, args.rows, args.second_org_rows, var_dir, rebuild=args.rebuild, quiet=args.json
            )
            try:
                result = measure(args.runs, args.warmup, args.depth)
            finally:
                listbench.pg_drop(args.database_url)
        else:
            database = prepare_database(var_dir, args.rows, args.second_org_rows, rebuild=args.rebuild, quiet=args.json)
            result = measure(args.runs, args.warmup, args.depth)
        result["database"] = database

    if args.json:
        print(json.dumps(result, indent=2, default=str))
        return 0
    print(
        f"{result['rows']:,} artifacts in one organization; pages of {result['page_size']}; {result['runs']} runs after "
        f"{result['warmup']} warm-up, interleaved; in-process server time (django.test.Client, signed in)"
    )
    print(f"{'':58}{'median':>9}{'p90':>9}{'min':>9}   ratio vs 100-artifact org")
    for row in result["results"].values():
        ratio = f"{row['ratio']:>7.3g}x" if row.get("ratio") is not None else ""
        print(f"{row['label'][:57]:58}{row['median_ms']:>9.2f}{row['p90_ms']:>9.2f}{row['min_ms']:>9.2f}   {ratio}")
    if "server_version" in result["database"]:
        print(f"database: PostgreSQL {result['database']['server_version']} ({result['database']['postgresql']})")
    print(f"matches: {result['matches']}; SQL queries per request: {result['queries_per_request']}")
    walk = result["search_rare_walk"]
    print(
        f'?q={result["words"]["rare"]}: first row shown after {walk["requests"]} request(s) ("Search further"), {walk["total_ms"]:.0f} ms in all'
    )
    for key, ok in result["meets_target"].items():
        print(
            f"{key}: median {result['results'][key]['median_ms']:.2f} ms ({'meets' if ok else 'MISSES'} the target of <= {TARGET_MS:.0f} ms)"
        )
    slow = [key for key, ok in result["within_target"].items() if not ok]
    if slow:
        print(f"over {TARGET_MS:.0f} ms: {', '.join(slow)}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
