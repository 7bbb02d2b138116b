#!/usr/bin/env python3
"""Where an execute request spends its time, web side and worker side, under pyinstrument.

Starts the stack (``manage.py runstack``) in a temporary directory for its Redis, worker and
database, then, in this process, sends ``--runs`` executes of ``true`` through the same ASGI
application the web processes serve (httpx's ASGI transport) and runs the worker's
``run_command`` as often, each under the profiler; prints both profiles.

    .venv/bin/python bench/profile_execute.py [--runs 200]
"""

from __future__ import annotations

import argparse
import asyncio
import os
import sys
import tempfile
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))
os.environ.setdefault("DJANGO_SETTINGS_MODULE", "config.settings")

from config.stack import LocalStack  # noqa: E402


async def web_side(org_id: str, api_key: str, runs: int, profiler) -> str:
    import httpx

    # The handler the web processes serve (its pool of request threads included).
    from config.asgi import django_application as app

    headers = {"Authorization": f"ApiKey {api_key}", "X-Org-Id": org_id}
    transport = httpx.ASGITransport(app=app)
    async with httpx.AsyncClient(
        transport=transport, base_url="http://localhost/api/v1", headers=headers, timeout=60
    ) as http:
        created = await http.post("/sandbox/create", json={"timeout_seconds": 3600})
        created.raise_for_status()
        sandbox_id = created.json()["sandbox_id"]
        for _ in range(10):
            await http.post(f"/sandbox/{sandbox_id}/execute", json={"command": ["true"]})
        profiler.start()
        for _ in range(runs):
            response = await http.post(f"/sandbox/{sandbox_id}/execute", json={"command": ["true"]})
            assert response.status_code == 200, response.text
        profiler.stop()
    return sandbox_id


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--runs", type=int, default=200)
    args = parser.parse_args()
    from pyinstrument import Profiler

    with (
        tempfile.TemporaryDirectory(prefix="stowage-profile-", ignore_cleanup_errors=True) as tmp,
        LocalStack(Path(tmp) / "var") as stack,
    ):
        os.environ.update(STOWAGE_VAR_DIR=str(stack.var_dir))
        import django

        django.setup()
        from django.conf import settings

        web = Profiler(interval=0.0005, async_mode="enabled")
        sandbox_id = asyncio.run(web_side(stack.org_id, stack.api_key, args.runs, web))
        from sandboxes.worker import run_command

        worker = Profiler(interval=0.0005)
        worker.start()
        for _ in range(args.runs):
            run_command(
                sandbox_id=sandbox_id,
                command=["true"],
                env={},
                working_dir=None,
                timeout_ms=10_000,
                stream_key=None,
            )
        worker.stop()
        assert settings.STOWAGE_HOST
    print("=== web side: POST /execute through the ASGI application ===")
    print(web.output_text(unicode=False, color=False, show_all=False))
    print("=== worker side: run_command ===")
    print(worker.output_text(unicode=False, color=False, show_all=False))
    return 0


if __name__ == "__main__":
    sys.exit(main())
