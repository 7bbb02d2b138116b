from __future__ import annotations

from core.errors import NotFound
from transfers.models import Transfer, TransferKind


def transfer_get(*, organization_id: str, transfer_id: str) -> Transfer:
    transfer = Transfer.objects.filter(organization_id=organization_id, id=transfer_id).first()
    if transfer is None:
        raise NotFound(f"Transfer '{transfer_id}' not found", code="TRANSFER_NOT_FOUND")
    return transfer


def direct_upload_get(*, organization_id: str, user_id: int, transfer_id: str) -> Transfer:
    """A browser upload straight to storage, only for the person who began it; the same 404 for any other."""
    transfer = (
        Transfer.objects.select_related("artifact")
        .filter(organization_id=organization_id, id=transfer_id, kind=TransferKind.PUT)
        .exclude(upload_id="")
        .first()
    )
    if transfer is None or transfer.actor.get("user_id") != user_id:
        raise NotFound(f"Upload '{transfer_id}' not found", code="UPLOAD_NOT_FOUND")
    return transfer
