"""Figures as people read them; one definition for every page and service."""
from __future__ import annotations

BYTE_UNITS = ("B", "KiB", "MiB", "GiB", "TiB")


def human_bytes(n: float | None, missing: str | None = "—") -> str | None:
    """1536 -> '1.5 KiB' (binary units, as Redis and the OS count them);
    None -> `missing`."""
    if n is None:
        return missing
    value = float(n)
    for unit in BYTE_UNITS:
        if abs(value) < 1024 or unit == BYTE_UNITS[-1]:
            return f"{value:,.0f} {unit}" if unit == "B" else f"{value:,.1f} {unit}"
        value /= 1024
    return missing  # unreachable: the last unit always returns
