"""Parsing and range checks for the resources a sandbox asks for."""

from __future__ import annotations

import re
from decimal import Decimal, InvalidOperation

from django.conf import settings

from core.errors import InvalidInput

_BINARY = {"Ki": 1 << 10, "Mi": 1 << 20, "Gi": 1 << 30, "Ti": 1 << 40}
_DECIMAL = {"k": 10**3, "K": 10**3, "M": 10**6, "G": 10**9, "T": 10**12}
_QUANTITY = re.compile(r"^\s*([0-9]+(?:\.[0-9]+)?)\s*(Ki|Mi|Gi|Ti|k|K|M|G|T)?\s*$")


def parse_memory(value: str | int | None) -> tuple[str, int]:
    """Kubernetes-style quantity ("512Mi", "2Gi", "1G" or bytes) -> (as given, bytes)."""
    if value is None or value == "":
        value = settings.SANDBOX_DEFAULT_MEMORY
    match = _QUANTITY.match(str(value))
    low, high = settings.SANDBOX_MIN_MEMORY_BYTES, settings.SANDBOX_MAX_MEMORY_BYTES
    allowed = f"between {low >> 20}Mi and {high >> 30}Gi (e.g. '512Mi', '2Gi')"
    if not match:
        raise InvalidInput(f"memory must be a quantity {allowed}; got {str(value)[:40]!r}", details={"field": "memory"})
    number = Decimal(match.group(1))
    unit = match.group(2)
    multiplier = _BINARY.get(unit) or _DECIMAL.get(unit) or 1
    size = int(number * multiplier)
    if not low <= size <= high:
        raise InvalidInput(f"memory must be {allowed}; got {value!r}", details={"field": "memory"})
    return str(value).strip(), size


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
