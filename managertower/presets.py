"""Named configs, one per row of the paper's Table I (manager designs, no VLP), Table II (L_C, the number of
cross-modal layers), Fig. 6 (N, the number of experts) and Table III (``meter``, ``bridgetower``,
``managertower``): ``preset("table1/aaum-fused")``. Every preset is base-size (RoBERTa-base, CLIP ViT-B/16 at
288 px, N = 6) unless ``base`` says otherwise; each name is defined once here.

``ABLATIONS`` says which presets make up each ablation (the rows ``scripts/managertower/ablation.sh`` trains):
membership is data, never read out of a preset's name.
"""

from __future__ import annotations

from dataclasses import replace

from managertower.config import CrossModalConfig, Fusion, Generator, ManagerTowerConfig, Query, TwoTowerManagerConfig
from vlcommon.enums import StrEnum

_BRIDGE = {"fusion": Fusion.BRIDGETOWER}


def _managed(**manager) -> dict:
    return {"fusion": Fusion.MANAGERTOWER, "manager": manager}


# Table I: type, query, weight shape (rows in the paper's order).
# fmt: off
TABLE_I = {
    "bt": _BRIDGE,
    "sam-n1": _managed(type="sam", weights="n1"),
    "sam-nd": _managed(type="sam", weights="nd"),
    "saum-n1": _managed(type="saum", weights="n1"),
    "saum-nd": _managed(type="saum", weights="nd"),
    "aaum-own": _managed(type="aaum", query=Query.OWN),
    "aaum-fused": _managed(type="aaum", query=Query.FUSED),
    "concat-attention-own": _managed(type="aaum", query=Query.OWN, generator=Generator.CONCAT_ATTENTION),
    "concat-attention-fused": _managed(type="aaum", query=Query.FUSED, generator=Generator.CONCAT_ATTENTION),
    "cross-attention-own": _managed(type="aaum", query=Query.OWN, generator=Generator.CROSS_ATTENTION),
    "cross-attention-fused": _managed(type="aaum", query=Query.FUSED, generator=Generator.CROSS_ATTENTION),
}
# fmt: on
TABLE_II_LAYERS = (2, 3, 4, 6, 8)  # L_C; BridgeTower uses the top L_C layers, ManagerTower always the top N = 6
TABLE_II = {
    **{f"bt-lc{n}": {**_BRIDGE, "cross_layers": n} for n in TABLE_II_LAYERS},
    **{f"mt-lc{n}": {**_managed(type="aaum"), "cross_layers": n} for n in TABLE_II_LAYERS},
}
# Fig. 6: ManagerTower with L_C = 3 and N = 2..8 unimodal experts, against BridgeTower with L_C = 3.
FIG6_EXPERTS = tuple(range(2, 9))
FIG6 = {
    "bt-lc3": {**_BRIDGE, "cross_layers": 3},
    **{f"mt-n{n}": {**_managed(type="aaum", experts=n), "cross_layers": 3} for n in FIG6_EXPERTS},
}
# The main comparison (Table III): METER, BridgeTower and ManagerTower with AAUM and the fused query.
MAIN = {
    "meter": {"fusion": Fusion.METER},
    "bridgetower": _BRIDGE,
    "managertower": _managed(type="aaum", query=Query.FUSED),
}


class Ablation(StrEnum):
    """The paper's ablations without VLP, each a set of presets trained on VQAv2 and Flickr30K."""

    TABLE1 = "table1"  # manager designs
    TABLE2 = "table2"  # L_C
    FIG6 = "fig6"  # N


_ROWS = {Ablation.TABLE1: TABLE_I, Ablation.TABLE2: TABLE_II, Ablation.FIG6: FIG6}
# Each ablation's presets, in the paper's row order; a row's preset name is "<ablation>/<row>".
ABLATIONS: dict[Ablation, tuple[str, ...]] = {a: tuple(f"{a}/{row}" for row in rows) for a, rows in _ROWS.items()}
PRESETS = {**MAIN, **{f"{a}/{row}": entry for a, rows in _ROWS.items() for row, entry in rows.items()}}


def preset(name: str, base: ManagerTowerConfig | None = None) -> ManagerTowerConfig:
    """The config of a named row on top of ``base`` (its encoders, cross-layer sizes and N are kept)."""
    if name not in PRESETS:
        raise ValueError(f"unknown preset {name!r}; choose from {', '.join(sorted(PRESETS))}")
    base = base or ManagerTowerConfig()
    entry = dict(PRESETS[name])
    cross: CrossModalConfig = replace(base.cross, layers=entry.pop("cross_layers", base.cross.layers))
    manager = replace(TwoTowerManagerConfig(experts=base.manager.experts), **entry.pop("manager", {}))
    return replace(base, cross=cross, manager=manager, **entry)
