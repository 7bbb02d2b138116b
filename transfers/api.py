from __future__ import annotations

from datetime import datetime
from typing import Any

from django.http import HttpRequest
from ninja import Router, Schema

from config.auth import require_scope
from config.schemas import errors
from transfers.models import Transfer, TransferState
from transfers.selectors import transfer_get

router = Router(tags=["transfers"])

# The API has always shown four states, and clients (the SDK among them) wait on those: the
# states of a direct browser upload are shown as the ones they refine.
_PUBLISHED_STATE = {TransferState.RECEIVING: TransferState.RUNNING, TransferState.UNQUEUED: TransferState.QUEUED}


class TransferOut(Schema):
    transfer_id: str
    kind: str
    state: str
    artifact_id: str
    sandbox_id: str
    path: str
    bytes_done: int
    bytes_total: int | None
    progress: float | None
    error: dict[str, str] | None
    created_at: datetime
    started_at: datetime | None
    finished_at: datetime | None


def transfer_out(transfer: Transfer) -> dict[str, Any]:
    total = transfer.bytes_total
    return {
        "transfer_id": transfer.id,
        "kind": transfer.kind,
        "state": _PUBLISHED_STATE.get(transfer.state, transfer.state),
        "artifact_id": transfer.artifact_id,
        "sandbox_id": transfer.sandbox_id,
        "path": transfer.path,
        "bytes_done": transfer.bytes_done,
        "bytes_total": total,
        "progress": round(transfer.bytes_done / total, 4)
        if total
        else (1.0 if transfer.state == "succeeded" else None),
        "error": {"code": transfer.error_code, "message": transfer.error_message} if transfer.error_code else None,
        "created_at": transfer.created_at,
        "started_at": transfer.started_at,
        "finished_at": transfer.finished_at,
    }


@router.get("/transfers/{transfer_id}", response={200: TransferOut, **errors(404)})
def get_transfer(request: HttpRequest, transfer_id: str):
    require_scope(request.auth, "artifacts:read")
    return transfer_out(transfer_get(organization_id=request.auth.organization_id, transfer_id=transfer_id))
