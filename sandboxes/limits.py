"""Parsing and range checks for the resources a sandbox asks for."""

from __future__ import annotations

import re
from decimal import Decimal, InvalidOperation

from django.conf import settings

from core.errors import InvalidInput

_BINARY = {"Ki": 1 << 10, "Mi": 1 << 20, "Gi": 1 << 30, "Ti": 1 << 40}
_DECIMAL = {"k": 10**3, "K": 10**3, "M": 10**6, "G": 10**9, "T": 10**12}
_QUANTITY = re.compile(r"^\s*([0-9]+(?:\.[0-9]+)?)\s*(Ki|Mi|Gi|Ti|k|K|M|G|T)?\s*$")


def _size(text: str) -> int | None:
    match = _QUANTITY.match(text)
    if not match:
        return None
    unit = match.group(2)
    return int(Decimal(match.group(1)) * (_BINARY.get(unit) or _DECIMAL.get(unit) or 1))


def parse_quantity(text: str) -> int | None:
    """Bytes of a quantity written like ``memory`` ("512Mi", "2Gi", "1G", bytes); None if it is not one."""
    return _size(text)


def format_size(size: int) -> str:
    """Bytes as the largest binary unit that divides them: 1073741824 -> "1Gi", rounding down to Mi."""
    for unit, multiplier in (("Ti", 1 << 40), ("Gi", 1 << 30)):
        if size % multiplier == 0:
            return f"{size // multiplier}{unit}"
    return f"{size >> 20}Mi"


def _parse_size(value: str | int | None, *, field: str, default: str, low: int, high: int) -> tuple[str, int]:
    if value is None or value == "":
        value = default
    text = str(value).strip()
    allowed = f"between {format_size(low)} and {format_size(high)} (e.g. '512Mi', '2Gi')"
    size = _size(text)
    if size is None:
        raise InvalidInput(f"{field} must be a quantity {allowed}; got {text[:40]!r}", details={"field": field})
    if not low <= size <= high:
        raise InvalidInput(
            f"{field} must be {allowed}; got {text[:40]!r}",
            details={"field": field, "min_bytes": low, "max_bytes": high},
        )
    return text, size


def parse_memory(value: str | int | None) -> tuple[str, int]:
    """Kubernetes-style quantity ("512Mi", "2Gi", "1G" or bytes) -> (as given, bytes).

    The ceiling is the smaller of the configured maximum and the memory of a sandbox host: a
    sandbox cannot be promised memory that no host has.
    """
    high = min(settings.SANDBOX_MAX_MEMORY_BYTES, settings.SANDBOX_HOST_MEMORY_BYTES)
    return _parse_size(
        value, field="memory", default=settings.SANDBOX_DEFAULT_MEMORY, low=settings.SANDBOX_MIN_MEMORY_BYTES, high=high
    )


def parse_disk(value: str | int | None) -> tuple[str, int]:
    """The size of the sandbox's workspace filesystem, a quantity written like ``memory``."""
    return _parse_size(
        value,
        field="disk",
        default=settings.SANDBOX_DISK_DEFAULT,
        low=settings.SANDBOX_DISK_MIN_BYTES,
        high=settings.SANDBOX_DISK_MAX_BYTES,
    )


def parse_cpus(value: str | int | float | None) -> tuple[str, float]:
    high = settings.SANDBOX_MAX_CPUS
    allowed = f"between 0.1 and {high} (e.g. '1', '0.5' or '500m')"
    if value is None or value == "":
        return "1", 1.0
    text = str(value).strip()
    try:
        count = float(Decimal(text[:-1]) / 1000) if text.endswith("m") else float(Decimal(text))
    except (InvalidOperation, ValueError):
        raise InvalidInput(f"cpus must be a number {allowed}; got {text[:40]!r}", details={"field": "cpus"}) from None
    if not 0.1 <= count <= high:
        raise InvalidInput(f"cpus must be {allowed}; got {text!r}", details={"field": "cpus"})
    return text, count


def grant_cpus(text: str, count: float) -> tuple[str, float]:
    """What a sandbox gets of the cpus it asked for: at most a host's cores.

    Asking for more than a host has is not an error (the hosted API's own example asks for 4),
    the sandbox gets every core and says so.
    """
    cores = settings.SANDBOX_HOST_CPUS
    if count <= cores:
        return text, count
    return str(cores), float(cores)


def check_timeout_seconds(value: int | None) -> int:
    high = settings.SANDBOX_MAX_TIMEOUT_SECONDS
    if value is None:
        return settings.SANDBOX_DEFAULT_TIMEOUT_SECONDS
    if not 1 <= value <= high:
        raise InvalidInput(
            f"timeout_seconds must be between 1 and {high}; got {value}", details={"field": "timeout_seconds"}
        )
    return value


def check_exec_timeout_ms(value: int | None) -> int:
    high = settings.SANDBOX_EXEC_MAX_TIMEOUT_MS
    if value is None:
        return settings.SANDBOX_EXEC_DEFAULT_TIMEOUT_MS
    if not 1 <= value <= high:
        raise InvalidInput(
            f"timeout must be between 1 and {high} milliseconds; got {value}", details={"field": "timeout"}
        )
    return value


_ENV_NAME = re.compile(r"^[A-Za-z_][A-Za-z0-9_]{0,127}$")


def check_env(env: dict[str, str] | None) -> dict[str, str]:
    env = env or {}
    if len(env) > 256:
        raise InvalidInput("env may hold at most 256 variables", details={"field": "env"})
    for name, value in env.items():
        if not _ENV_NAME.match(name):
            raise InvalidInput(
                f"env variable name {name[:64]!r} is invalid: use letters, digits and '_', not starting with a digit",
                details={"field": "env"},
            )
        if "\x00" in value or len(value) > 32768:
            raise InvalidInput(
                f"env variable {name} has a NUL byte or is longer than 32768 characters", details={"field": "env"}
            )
    return env
