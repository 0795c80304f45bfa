"""ManagerTower, BridgeTower and METER: the paper's Two-Tower vision-language models (Sec. III-IV, App. B)."""

from managertower.config import (
    CrossModalConfig,
    Fusion,
    Generator,
    LinkType,
    ManagerKind,
    ManagerTowerConfig,
    Query,
    TextEncoderConfig,
    TwoTowerManagerConfig,
    VisionEncoderConfig,
    WeightShape,
)
from managertower.model import ManagerTowerModel, ManagerTowerOutput

__all__ = [
    "CrossModalConfig", "Fusion", "Generator", "LinkType", "ManagerKind", "ManagerTowerConfig", "ManagerTowerModel",
    "ManagerTowerOutput", "Query", "TextEncoderConfig", "TwoTowerManagerConfig", "VisionEncoderConfig", "WeightShape",
]  # fmt: skip
