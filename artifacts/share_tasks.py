"""Share link work, on the shared queue (no ``host`` keyword)."""

from __future__ import annotations

from typing import Any

from celery import shared_task


@shared_task(name="artifacts.share_tasks.activate_share_link")
def activate_share_link(*, share_id: str, actor: dict[str, Any]) -> dict[str, str]:
    from artifacts.shares import share_link_activate
    from core.actor import Actor

    link = share_link_activate(share_id=share_id, actor=Actor.from_dict(actor))
    return {"share_id": share_id, "state": link.state if link is not None else "missing"}
