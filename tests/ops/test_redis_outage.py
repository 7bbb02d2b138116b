"""Redis goes down in the middle of a run: the API answers 503 BROKER_UNAVAILABLE with
Retry-After at once, the dashboard shows a banner, and work queued before the outage is done
once Redis is back.

The broker URL is fixed when the settings are imported, so the scenario runs in a pytest of its
own (``test_outage_scenario``), pointed by ``REDIS_URL`` at a throwaway ``redis-server`` on a
free loopback port; ``test_redis_outage`` starts that pytest and checks that it passed.
"""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import pytest

from config import stack
from tests.ops.outage_scenario import INNER

BASE_DIR = Path(__file__).resolve().parents[2]


# --- the outer test: a pytest of its own against a throwaway Redis ----------------------------


@pytest.mark.worker
def test_redis_outage(tmp_path):
    port = stack.free_port()
    env = {
        k: v
        for k, v in os.environ.items()
        if k not in ("STOWAGE_DATABASE_NAME", "DATABASE_URL", "STOWAGE_SANDBOX_ROOT", "REDIS_CACHE_URL", "STOWAGE_HOST")
    }
    env.update(
        REDIS_URL=f"redis://127.0.0.1:{port}/0",
        STOWAGE_VAR_DIR=str(tmp_path / "var"),
        PYTHONUNBUFFERED="1",
        **{INNER: str(tmp_path / "redis")},
    )
    argv = [
        sys.executable,
        "-m",
        "pytest",
        f"{Path(__file__).with_name('outage_scenario.py')}::test_outage_scenario",
        "-p",
        "no:cacheprovider",
        "-q",
        "-x",
    ]
    done = subprocess.run(argv, check=False, env=env, cwd=BASE_DIR, capture_output=True, text=True, timeout=170)
    assert done.returncode == 0, done.stdout[-6000:] + done.stderr[-3000:]
    assert "1 passed" in done.stdout, done.stdout[-3000:]
