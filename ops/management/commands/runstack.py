from __future__ import annotations

import os
import signal
import time

from django.conf import settings
from django.core.management.base import BaseCommand, CommandError

from config import stack
from config.celery import app as celery_app


class Command(BaseCommand):
    help = "Run Stowage on this machine: embedded Redis (unless REDIS_URL is set), web server, Celery worker and beat."

    def add_arguments(self, parser):
        parser.add_argument("--port", type=int, default=int(os.environ.get("PORT", "8000")))
        parser.add_argument("--bind", default=os.environ.get("BIND", "127.0.0.1"))
        parser.add_argument("--no-beat", action="store_true", help="do not run the periodic-task scheduler")

    def handle(self, *args, **options):
        run_dir = settings.VAR_DIR / "run"
        log_dir = settings.VAR_DIR / "log"
        run_dir.mkdir(parents=True, exist_ok=True)
        log_dir.mkdir(parents=True, exist_ok=True)
        stopping = False

        def request_stop(signum, frame):
            nonlocal stopping
            stopping = True

        signal.signal(signal.SIGINT, request_stop)
        signal.signal(signal.SIGTERM, request_stop)

        started = []
        redis_process = None
        try:
            if settings.EMBEDDED_REDIS:
                redis_process = stack.start_embedded_redis(
                    settings.EMBEDDED_REDIS_SOCKET, settings.VAR_DIR / "redis", log=log_dir / "redis.log"
                )
                self.stdout.write(f"embedded Redis on {settings.EMBEDDED_REDIS_SOCKET}")
            host = settings.STOWAGE_HOST
            argvs = stack.host_worker_argvs(
                host, commands=settings.SANDBOX_EXEC_CONCURRENCY, files=settings.SANDBOX_FILE_CONCURRENCY
            )
            # On one machine the web process answers first: the workers' busy moments (hashing
            # a transfer, starting sandboxes) wait for it, so health checks and the API stay quick.
            nice = ["nice", "-n", str(settings.WORKER_NICENESS)] if settings.WORKER_NICENESS else []
            workers = [stack.spawn([*nice, *argv]) for argv in argvs]
            started.extend(workers)
            stack.wait_for_worker(celery_app, host, timeout=60, process=workers[0])
            stack.wait_for_worker(celery_app, host, timeout=60, process=workers[1], name="commands")
            self.stdout.write(f"workers for sandbox.{host} and sandbox.{host}.exec are up")
            if not options["no_beat"]:
                started.append(stack.spawn(stack.beat_argv(run_dir / "celerybeat-schedule")))
            started.append(stack.spawn(stack.web_argv(options["port"], bind=options["bind"])))
            self.stdout.write(
                self.style.SUCCESS(
                    f"Stowage is running on http://{options['bind']}:{options['port']}/ (Ctrl-C stops it)"
                )
            )
            while not stopping:
                for process in started:
                    if process.poll() is not None:
                        raise CommandError(f"{' '.join(process.args[:6])} exited with code {process.returncode}")
                time.sleep(0.5)
        finally:
            self.stdout.write("stopping...")
            # Web first so no new work arrives, the worker next so it can finish, Redis last.
            stack.stop(list(reversed(started)))
            if redis_process is not None:
                stack.stop([redis_process])
            self.stdout.write("stopped")
