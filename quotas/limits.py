"""Quota values: parsing what staff type (``50GiB``, ``512Mi``, ``1000``) and the instance's defaults."""

from __future__ import annotations

from dataclasses import dataclass

from django.conf import settings

from core.errors import InvalidInput
from sandboxes.limits import parse_quantity

# Far past any real deployment, so a typo (an extra digit group, a unit slip) is refused, not obeyed.
MAX_BYTES = 1 << 60  # 1 EiB
MAX_ARTIFACTS = 10**12
MAX_SANDBOXES = 10**6

MAXIMUM = {"bytes": MAX_BYTES, "largest": MAX_BYTES, "artifacts": MAX_ARTIFACTS, "sandboxes": MAX_SANDBOXES}
SIZE_QUOTAS = ("bytes", "largest")


@dataclass(frozen=True)
class Limits:
    """An organization's quotas in force; None is unlimited."""

    bytes: int | None
    artifacts: int | None
    largest: int | None
    sandboxes: int | None


def parse_quota(name: str, value: str | int | None) -> int:
    """A quota as a number (0 is unlimited): sizes take the sandboxes' quantities, with an optional
    trailing ``B`` (``50GiB``, ``512Mi``, ``10G``, bytes); counts are whole numbers. Negative,
    malformed or absurd values are InvalidInput."""
    text = str("" if value is None else value).strip()
    if name in SIZE_QUOTAS:
        size = parse_quantity(text.removesuffix("B"))
        kind = "a size such as '50GiB', '512Mi' or a number of bytes"
    else:
        size = int(text) if text.isascii() and text.isdigit() else None
        kind = "a whole number"
    if size is None:
        raise InvalidInput(f"the {name} quota must be {kind}; got {text[:40]!r}", details={"field": name})
    if size > MAXIMUM[name]:
        raise InvalidInput(
            f"the {name} quota of {text[:40]!r} is larger than the {MAXIMUM[name]} this instance accepts",
            details={"field": name, "max": MAXIMUM[name]},
        )
    return size


SETTINGS = {
    "bytes": "STOWAGE_QUOTA_BYTES",
    "artifacts": "STOWAGE_QUOTA_ARTIFACTS",
    "largest": "STOWAGE_QUOTA_LARGEST_ARTIFACT",
    "sandboxes": "STOWAGE_QUOTA_RUNNING_SANDBOXES",
}


def _default(name: str) -> int | None:
    # Checked at start by quotas.checks, so a bad setting stops the process instead of every upload.
    value = getattr(settings, SETTINGS[name], "")
    return parse_quota(name, value or "0") or None


def instance_defaults() -> Limits:
    return Limits(**{name: _default(name) for name in ("bytes", "artifacts", "largest", "sandboxes")})


def limits_with(override) -> Limits:
    """The defaults with an organization's override row (or None) applied: a column that is set
    wins, and 0 there is unlimited."""
    defaults = instance_defaults()
    if override is None:
        return defaults
    values = {}
    for name in ("bytes", "artifacts", "largest", "sandboxes"):
        own = getattr(override, name)
        values[name] = getattr(defaults, name) if own is None else (own or None)
    return Limits(**values)
