"""One call on a sandbox's host that a request waits for: the task and its arguments, the audit
event that records it and what to answer. Run from synchronous code (``call_on_host``) or
awaited by the API's async endpoints (``acall_on_host``: the wait holds no thread)."""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

from celery import Task
from django.conf import settings

from core.actor import Actor
from core.dispatch import arun_on_host, run_on_host
from sandboxes.models import Sandbox
from sandboxes.states import audited, audited_wait


def _unchanged(answer: dict[str, Any], details: dict[str, Any]) -> Any:
    return answer


@dataclass
class HostCall:
    task: Task
    sandbox: Sandbox
    arguments: dict[str, Any]
    action: str
    resource: str = ""
    details: dict[str, Any] = field(default_factory=dict)
    # What the caller gets from the worker's answer; it may add to the audit event's details.
    result: Callable[[dict[str, Any], dict[str, Any]], Any] = _unchanged

    @property
    def timeout(self) -> float:
        return settings.SANDBOX_FILE_WAIT_SECONDS

    def send_arguments(self) -> dict[str, Any]:
        return {
            "host": self.sandbox.host,
            "timeout": self.timeout,
            "admit_org": self.sandbox.organization_id,
            "sandbox_id": self.sandbox.id,
            **self.arguments,
        }


def call_on_host(call: HostCall, *, actor: Actor) -> Any:
    with audited(
        actor=actor, action=call.action, sandbox=call.sandbox, resource=call.resource, details=call.details
    ) as details:
        return call.result(run_on_host(call.task, **call.send_arguments()), details)


async def acall_on_host(call: HostCall, *, actor: Actor) -> Any:
    outcome: dict[str, Any] = {}

    def describe(answer: dict[str, Any], details: dict[str, Any]) -> None:
        outcome["value"] = call.result(answer, details)

    await audited_wait(
        arun_on_host(call.task, **call.send_arguments()),
        actor=actor,
        action=call.action,
        sandbox=call.sandbox,
        resource=call.resource,
        details=call.details,
        describe=describe,
    )
    return outcome["value"]
