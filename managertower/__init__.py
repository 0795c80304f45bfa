"""ManagerTower, BridgeTower and METER: the paper's Two-Tower vision-language models (Sec. III-IV, App. B)."""

from managertower.config import (
    CrossModalConfig,
    Fusion,
    Generator,
    LinkType,
    ManagerConfig,
    ManagerKind,
    ManagerTowerConfig,
    Query,
    TextEncoderConfig,
    VisionEncoderConfig,
    WeightShape,
)
from managertower.model import ManagerTowerModel, ManagerTowerOutput

__all__ = [
    "CrossModalConfig", "Fusion", "Generator", "LinkType", "ManagerConfig", "ManagerKind", "ManagerTowerConfig",
    "ManagerTowerModel", "ManagerTowerOutput", "Query", "TextEncoderConfig", "VisionEncoderConfig", "WeightShape",
]  # fmt: skip
