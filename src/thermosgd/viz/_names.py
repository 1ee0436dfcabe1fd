"""Names the figures and the report share (no matplotlib here)."""

from __future__ import annotations

__all__ = ["optimizer_slug"]


def optimizer_slug(group: dict) -> str:
    """File-name tag of an optimizer group: sgd, momentum0.9, adamw0.9-0.999."""
    o = group["optimizer"]
    if o == "sgd":
        return "sgd"
    if o == "momentum":
        return f"momentum{group['momentum']:g}"
    return f"adamw{group['momentum']:g}-{group['beta2']:g}"
