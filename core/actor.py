"""Who is acting: built once per request (or per task, from the request's plain values) and passed down."""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any


@dataclass(frozen=True)
class Actor:
    """Who is acting and from where; built once per request or task and passed down."""

    organization_id: str | None
    user_id: int | None = None
    api_key_id: str | None = None
    label: str = "system"
    ip: str | None = None
    user_agent: str = ""
    request_id: str = ""
    scopes: frozenset[str] = field(default_factory=frozenset)
    # The caller's own X-Request-Id, kept beside the server's; never assumed to be unique.
    client_request_id: str = ""
    # "api_key", "token" (a short-lived access token of a key) or "session" (the dashboard).
    credential: str = ""

    @classmethod
    def system(cls, organization_id: str | None = None) -> Actor:
        return cls(organization_id=organization_id, label="system")

    def to_dict(self) -> dict[str, Any]:
        """Plain values, for a task that records the event on a worker.

        Only the fields every release knows: a worker of the previous release builds an Actor
        from these during a rolling upgrade, and an unknown key would make it fail."""
        return {
            "organization_id": self.organization_id,
            "user_id": self.user_id,
            "api_key_id": self.api_key_id,
            "label": self.label,
            "ip": self.ip,
            "user_agent": self.user_agent,
            "request_id": self.request_id,
            "scopes": sorted(self.scopes),
        }

    @classmethod
    def from_dict(cls, data: dict[str, Any]) -> Actor:
        known = {name: value for name, value in data.items() if name in cls.__dataclass_fields__}
        return cls(**{**known, "scopes": frozenset(data.get("scopes", ()))})
