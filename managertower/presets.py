"""Named configs, one per row of the paper's Table I (manager designs, no VLP), Table II (L_C, the number of
cross-modal layers), Fig. 6 (N, the number of experts) and Table III (``meter``, ``bridgetower``,
``managertower``): ``preset("table1/aaum-fused")``. Every preset is base-size (RoBERTa-base, CLIP ViT-B/16 at
288 px, N = 6) unless ``base`` says otherwise; each name is defined once here.
"""

from __future__ import annotations

from dataclasses import replace

from managertower.config import CrossModalConfig, Fusion, Generator, ManagerConfig, ManagerTowerConfig, Query

_BRIDGE = {"fusion": Fusion.BRIDGETOWER}


def _managed(**manager) -> dict:
    return {"fusion": Fusion.MANAGERTOWER, "manager": manager}


# Table I: type, query, weight shape (rows in the paper's order).
# fmt: off
TABLE_I = {
    "bt": _BRIDGE,
    "sam-n1": _managed(kind="sam", weights="n1"),
    "sam-nd": _managed(kind="sam", weights="nd"),
    "saum-n1": _managed(kind="saum", weights="n1"),
    "saum-nd": _managed(kind="saum", weights="nd"),
    "aaum-own": _managed(kind="aaum", query=Query.OWN),
    "aaum-fused": _managed(kind="aaum", query=Query.FUSED),
    "concat-attention-own": _managed(kind="aaum", query=Query.OWN, generator=Generator.CONCAT_ATTENTION),
    "concat-attention-fused": _managed(kind="aaum", query=Query.FUSED, generator=Generator.CONCAT_ATTENTION),
    "cross-attention-own": _managed(kind="aaum", query=Query.OWN, generator=Generator.CROSS_ATTENTION),
    "cross-attention-fused": _managed(kind="aaum", query=Query.FUSED, generator=Generator.CROSS_ATTENTION),
}
# fmt: on
TABLE_II_LAYERS = (2, 3, 4, 6, 8)  # L_C; BridgeTower uses the top L_C layers, ManagerTower always the top N = 6
TABLE_II = {
    **{f"bt-lc{n}": {**_BRIDGE, "cross_layers": n} for n in TABLE_II_LAYERS},
    **{f"mt-lc{n}": {**_managed(kind="aaum"), "cross_layers": n} for n in TABLE_II_LAYERS},
}
# Fig. 6: ManagerTower with L_C = 3 and N = 2..8 unimodal experts, against BridgeTower with L_C = 3.
FIG6_EXPERTS = tuple(range(2, 9))
FIG6 = {
    "bt-lc3": {**_BRIDGE, "cross_layers": 3},
    **{f"mt-n{n}": {**_managed(kind="aaum", experts=n), "cross_layers": 3} for n in FIG6_EXPERTS},
}
# The main comparison (Table III): METER, BridgeTower and ManagerTower with AAUM and the fused query.
MAIN = {
    "meter": {"fusion": Fusion.METER},
    "bridgetower": _BRIDGE,
    "managertower": _managed(kind="aaum", query=Query.FUSED),
}
PRESETS = {
    **MAIN,
    **{f"table1/{k}": v for k, v in TABLE_I.items()},
    **{f"table2/{k}": v for k, v in TABLE_II.items()},
    **{f"fig6/{k}": v for k, v in FIG6.items()},
}


def preset(name: str, base: ManagerTowerConfig | None = None) -> ManagerTowerConfig:
    """The config of a named row on top of ``base`` (its encoders, cross-layer sizes and N are kept)."""
    if name not in PRESETS:
        raise ValueError(f"unknown preset {name!r}; choose from {', '.join(sorted(PRESETS))}")
    base = base or ManagerTowerConfig()
    entry = dict(PRESETS[name])
    cross: CrossModalConfig = replace(base.cross, layers=entry.pop("cross_layers", base.cross.layers))
    manager = replace(ManagerConfig(experts=base.manager.experts), **entry.pop("manager", {}))
    return replace(base, cross=cross, manager=manager, **entry)
