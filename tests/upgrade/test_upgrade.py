"""An upgrade never loses data: a database made by the previous main (tests/upgrade/fixtures, made by
make_fixtures.sh) is migrated by the current code, and every row it held is found again with the
same values, the audit chain still verifies, and stored bytes still match their checksums.

The SQLite fixture is upgraded on every run; the PostgreSQL one when the suite runs on PostgreSQL
(DATABASE_URL names a server, as in the third pass of ``make test``), in a database of its own.
"""

from __future__ import annotations

import copy
import json
import os
import re
import shutil
import subprocess
import sys
import uuid
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from pathlib import Path
from urllib.parse import urlsplit, urlunsplit

import pytest
from django.conf import settings

Row = dict[str, str | None]


@dataclass(frozen=True)
class Kept:
    """Where the current code keeps a model of the previous main, and how its columns changed.

    ``renamed``: old column (attname) → the current one. ``converted``: old column → a function of
    the whole old row (attname → text) giving the text the current code must hold there, for values
    whose meaning moved (a state split in two, a flag folded into a state). ``dropped``: old columns
    the current code no longer has; each only where another column (converted) now holds what it said.
    """

    app_label: str
    model: str
    renamed: Mapping[str, str] = field(default_factory=dict)
    converted: Mapping[str, Callable[[Row], str | None]] = field(default_factory=dict)
    dropped: frozenset[str] = frozenset()

    @property
    def label(self) -> str:
        return f"{self.app_label}.{self.model}"


def _direct_upload(row: Row) -> bool:
    return row["kind"] == "put" and bool(row["upload_id"])


def transfer_state(row: Row) -> str | None:
    """A direct upload still taking parts is now ``receiving``; one whose finish the queue refused
    (flagged by its error code) is ``unqueued``."""
    if _direct_upload(row) and row["state"] == "running" and row["completed_at"] is None:
        return "receiving"
    if _direct_upload(row) and row["state"] == "queued" and row["error_code"] == "BROKER_UNAVAILABLE":
        return "unqueued"
    return row["state"]


def transfer_error_code(row: Row) -> str | None:
    return "" if transfer_state(row) == "unqueued" else row["error_code"]


# Every model of the previous main, by its (app_label, model) there. When a model moves to another
# app, its entry points there, with the columns whose meaning moved.
KEPT_AS: dict[tuple[str, str], Kept] = {
    ("accounts", "Organization"): Kept("accounts", "Organization"),
    ("accounts", "Membership"): Kept("accounts", "Membership"),
    ("accounts", "ApiKey"): Kept("accounts", "ApiKey"),
    ("auth", "User"): Kept("auth", "User"),
    ("sandboxes", "Sandbox"): Kept("sandboxes", "Sandbox"),
    ("artifacts", "Artifact"): Kept("artifacts", "Artifact"),
    ("artifacts", "Transfer"): Kept(
        "transfers", "Transfer", converted={"state": transfer_state, "error_code": transfer_error_code}
    ),
    ("artifacts", "ShareLink"): Kept("shares", "ShareLink"),
    ("audit", "AuditEvent"): Kept("audit", "AuditEvent"),
    ("audit", "AuditChainHead"): Kept("audit", "AuditChainHead"),
}

FIXTURES = Path(__file__).resolve().parent / "fixtures"
BASE_DIR = Path(settings.BASE_DIR)
DATABASE_URL = os.environ.get("DATABASE_URL", "")


def kept(label: str) -> Kept:
    app_label, model = label.split(".")
    return KEPT_AS[(app_label, model)]


def wanted_rows(expected: Mapping[str, Mapping[str, Row]]) -> dict[str, dict[str, Row]]:
    """What the current code must hold for the previous main's rows: by current model and primary
    key, each column under its current name with its current text."""
    wanted: dict[str, dict[str, Row]] = {}
    for label, rows in expected.items():
        target = kept(label)
        into = wanted.setdefault(target.label, {})
        for pk, old in rows.items():
            into[pk] = {
                target.renamed.get(column, column): target.converted[column](old)
                if column in target.converted
                else value
                for column, value in old.items()
                if column not in target.dropped
            }
    return wanted


def differences(wanted: Mapping[str, Mapping[str, Row]], current: Mapping[str, Mapping[str, Row]]) -> list[str]:
    """Every wanted row missing from the current rows, and every value that is not as wanted.
    Rows and columns the current code added are not looked at."""
    found = []
    for label, rows in wanted.items():
        current_rows = current.get(label, {})
        for pk, row in rows.items():
            now = current_rows.get(pk)
            if now is None:
                found.append(f"{label} {pk} is missing")
                continue
            for column, value in row.items():
                if column not in now:
                    found.append(f"{label} {pk} has no column {column}")
                elif now[column] != value:
                    found.append(f"{label} {pk} {column}: {value!r} became {now[column]!r}")
    return found


def load_expected(database: str) -> dict:
    return json.loads((FIXTURES / database / "expected.json").read_text())


def run(argv: list[str], env: dict[str, str], *, stdin: str | None = None) -> subprocess.CompletedProcess:
    return subprocess.run(
        argv, cwd=BASE_DIR, env=env, input=stdin, capture_output=True, text=True, timeout=300, check=False
    )


def current_code_env(var_dir: Path, database_url: str = "") -> dict[str, str]:
    """The environment of the current code run against the copy alone: none of this test run's
    own database, storage or queue settings."""
    env = {
        name: value
        for name, value in os.environ.items()
        if not name.startswith(("STOWAGE_", "AWS_", "DATABASE_URL", "REDIS_", "DJANGO_"))
    }
    env.update(STOWAGE_VAR_DIR=str(var_dir), DJANGO_SETTINGS_MODULE="config.settings", PYTHONUNBUFFERED="1")
    if database_url:
        env["DATABASE_URL"] = database_url
    return env


def manage(env: dict[str, str], *args: str) -> subprocess.CompletedProcess:
    return run([sys.executable, "manage.py", *args], env)


def assert_upgrades_keeping_everything(database: str, env: dict[str, str]) -> None:
    expected = load_expected(database)
    migrated = manage(env, "migrate", "--noinput")
    assert migrated.returncode == 0, migrated.stdout + migrated.stderr

    wanted = wanted_rows(expected["models"])
    ready = [pk for pk, row in expected["models"]["artifacts.Artifact"].items() if row["state"] == "ready"]
    request = {
        "models": sorted(wanted),
        "blobs": {"model": kept("artifacts.Artifact").label, "ids": ready},
        "search": ready,
    }
    read = run([sys.executable, "-m", "tests.upgrade.readback"], env, stdin=json.dumps(request))
    assert read.returncode == 0, read.stderr
    current = json.loads(read.stdout)
    found = differences(wanted, current["models"])
    assert not found, f"{len(found)} differences after the upgrade:\n" + "\n".join(found[:50])

    audit = manage(env, "verify_audit")
    assert audit.returncode == 0, audit.stdout + audit.stderr
    checked = re.search(r"(\d+) events", audit.stdout)
    assert checked and int(checked.group(1)) == expected["audit_chain_head"]["events"], audit.stdout
    assert_new_chains_start_after_the_shared_one(expected, env)

    assert ready
    # The upgrade indexed the artifacts it found: each visible one is on its search's first page.
    assert set(current["search"].values()) <= {"first page", "hidden"}, current["search"]
    assert "first page" in current["search"].values()
    # ... and summarized them for the folder view: every ready artifact counted under its root.
    assert sum(current["folders"]["root_counts"]) == len(ready)
    rows = expected["models"]["artifacts.Artifact"]
    assert current["folders"]["heads"] == len({(rows[pk]["organization_id"], rows[pk]["remote_path"]) for pk in ready})
    for blobs in (current["blobs"], swept_blobs(env, ready)):
        for pk in ready:
            old = expected["models"]["artifacts.Artifact"][pk]
            # Each ready artifact's object became the blob of its bytes, in its organization.
            blob = {"sha256": old["checksum"].removeprefix("sha256:"), "state": "live", "org": old["organization_id"]}
            assert blobs[pk] == {"size": old["size"], "checksum": old["checksum"], "blob": blob}, pk


def swept_blobs(env: dict[str, str], ready: list[str]) -> dict:
    """The ready artifacts' bytes once the sweeper has removed what the upgrade left to nobody."""
    request = {"sweep": True, "blobs": {"model": kept("artifacts.Artifact").label, "ids": ready}}
    read = run([sys.executable, "-m", "tests.upgrade.readback"], env, stdin=json.dumps(request))
    assert read.returncode == 0, read.stderr
    return json.loads(read.stdout)["blobs"]


def assert_new_chains_start_after_the_shared_one(expected: dict, env: dict[str, str]) -> None:
    """The earlier release's events stay one shared chain; new events in two organizations start
    chains of their own where it stands, while a process of the earlier release still appends to it;
    an edit on either side is named."""
    after = run([sys.executable, "-m", "tests.upgrade.audit_after"], env)
    assert after.returncode == 0, after.stderr
    found = json.loads(after.stdout)
    head = expected["audit_chain_head"]
    assert found["shared_events"] == head["events"]
    assert found["shared_head"] == [head["last_seq"], head["last_hash"]]
    assert len(found["organizations"]) == 2
    # The first chain began at the earlier release's head, the second after its late event.
    assert found["chain_starts"][0] == [head["last_seq"], head["last_hash"]]
    assert found["chain_starts"][1][1] == found["late_event"]
    assert found["first_new_prev_hashes"] == [head["last_hash"], found["late_event"]]
    assert found["after_new_events"]["ok"], found["after_new_events"]
    assert f"{head['events'] + 1 + 6} events verified" in found["after_new_events"]["output"]
    for org in found["organizations"]:
        assert f"chain {org}: intact" in found["after_new_events"]["output"]
    assert not found["old_tampered"]["ok"]
    assert f"{found['old_event']} in shared chain" in found["old_tampered"]["error"]
    assert not found["new_tampered"]["ok"]
    assert f"{found['new_event']} in chain {found['organizations'][1]}" in found["new_tampered"]["error"]
    assert found["restored"]["ok"], found["restored"]


def copy_storage(database: str, var_dir: Path) -> None:
    shutil.copytree(FIXTURES / database / "storage", var_dir / "storage")


# --- the fixtures and the comparison themselves ---------------------------------------------------


@pytest.mark.parametrize("database", ["sqlite", "postgresql"])
def test_the_fixture_holds_every_kind_of_row(database):
    expected = load_expected(database)
    models = expected["models"]
    assert set(models) == {f"{app}.{model}" for app, model in KEPT_AS}

    def values(label: str, column: str) -> set[str | None]:
        return {row[column] for row in models[label].values()}

    transfers = list(models["artifacts.Transfer"].values())
    assert {(t["kind"], t["state"]) for t in transfers} == {
        (kind, state)
        for kind in ("upload", "download", "put")
        for state in ("queued", "running", "succeeded", "failed")
    }
    direct = {(t["state"], t["completed_at"] is not None, t["error_code"]) for t in transfers if t["upload_id"]}
    assert direct == {
        ("running", False, ""),  # taking parts
        ("queued", True, ""),  # completed, its finish queued
        ("queued", True, "BROKER_UNAVAILABLE"),  # completed, its finish refused by the queue
        ("running", True, ""),  # being finished by a worker
        ("succeeded", True, ""),
        ("failed", False, "CANCELLED"),
        ("failed", True, "PART_SIZE_MISMATCH"),
    }
    assert values("artifacts.Artifact", "state") == {"pending", "ready", "failed", "deleted"}
    assert values("artifacts.ShareLink", "state") == {"pending", "active", "revoked"}
    assert values("sandboxes.Sandbox", "status") == {"creating", "running", "terminating", "terminated", "error"}
    summaries = [a for a in models["artifacts.Artifact"].values() if a["remote_path"] == "reports/summary.txt"]
    assert {"1", "2", "3"} <= {a["version"] for a in summaries}
    assert any(not a["metadata"].isascii() for a in summaries)
    assert any(s["password_hash"] and s["max_downloads"] for s in models["artifacts.ShareLink"].values())
    assert len(models["audit.AuditEvent"]) == expected["audit_chain_head"]["events"] > 0


def test_a_lost_row_or_a_changed_value_is_noticed():
    wanted = wanted_rows(load_expected("sqlite")["models"])
    assert differences(wanted, copy.deepcopy(wanted)) == []
    current = copy.deepcopy(wanted)
    transfers, artifacts = kept("artifacts.Transfer").label, kept("artifacts.Artifact").label
    lost = sorted(current[transfers])[0]
    del current[transfers][lost]
    changed, row = sorted(current[artifacts].items())[0]
    column = sorted(row)[-1]
    before, row[column] = row[column], f"{row[column]} (changed)"
    assert sorted(differences(wanted, current)) == sorted(
        [f"{transfers} {lost} is missing", f"{artifacts} {changed} {column}: {before!r} became {row[column]!r}"]
    )


# --- the upgrades -------------------------------------------------------------------------------


def test_a_sqlite_database_of_the_previous_main_upgrades(tmp_path):
    var_dir = tmp_path / "var"
    var_dir.mkdir()
    shutil.copyfile(FIXTURES / "sqlite" / "stowage.sqlite", var_dir / "stowage.sqlite3")
    copy_storage("sqlite", var_dir)
    assert_upgrades_keeping_everything("sqlite", current_code_env(var_dir))


def with_database(url: str, name: str) -> str:
    parts = urlsplit(url)
    return urlunsplit(parts._replace(path=f"/{name}"))


@pytest.mark.database
@pytest.mark.skipif(
    not DATABASE_URL.startswith("postgres"), reason="the suite runs on SQLite (DATABASE_URL names no PostgreSQL)"
)
def test_a_postgresql_database_of_the_previous_main_upgrades(tmp_path):
    import psycopg
    from psycopg import sql

    try:
        server = psycopg.connect(with_database(DATABASE_URL, "postgres"), autocommit=True, connect_timeout=10)
    except psycopg.Error as exc:
        pytest.fail(f"the PostgreSQL server of DATABASE_URL cannot be reached: {exc}")
    name = f"stowage_upg_{uuid.uuid4().hex[:12]}"
    url = with_database(DATABASE_URL, name)
    server.execute(sql.SQL("CREATE DATABASE {}").format(sql.Identifier(name)))
    try:
        dump = FIXTURES / "postgresql" / "stowage.sql"
        restored = run(["psql", "-X", "-q", "-v", "ON_ERROR_STOP=1", "-d", url, "-f", str(dump)], os.environ.copy())
        assert restored.returncode == 0, restored.stderr
        var_dir = tmp_path / "var"
        var_dir.mkdir()
        copy_storage("postgresql", var_dir)
        assert_upgrades_keeping_everything("postgresql", current_code_env(var_dir, url))
    finally:
        server.execute(sql.SQL("DROP DATABASE IF EXISTS {} WITH (FORCE)").format(sql.Identifier(name)))
        server.close()
