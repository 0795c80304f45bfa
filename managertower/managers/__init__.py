"""Managers (paper Sec. III): SAM and SAUM (static weights), AAUM (per-token weights from a query)."""

from managertower.managers.adaptive import AdaptiveManager, LayerAttention
from managertower.managers.output import ManagerOutput
from managertower.managers.static import StaticManager

__all__ = ["AdaptiveManager", "LayerAttention", "ManagerOutput", "StaticManager"]
