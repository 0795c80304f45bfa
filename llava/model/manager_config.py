"""Typed manager configuration and its presets (paper Sec. V-B2 and the ablations of Figs. 9-11).

Index conventions, chosen to match the code that consumes them:

* ``expert_layers``: vision hidden-state indices ``k`` of ``V_k`` = output of SigLIP layer ``k`` (1-based, as in the
  paper; ``V_26`` is what LLaVA-OV feeds the LLM). Valid: ``1 .. vision depth``.
* ``inject_layers``: 0-based indices of the LLM decoder layers *before* which a manager adds its output, like
  Python's ``model.layers[i]`` (the paper's 1-based "layer 1, 5, ..., 21" are indices 0, 4, ..., 20).

Both are stored explicitly in ``config.json`` (``"manager": {...}``); presets only help to write them.
"""

from __future__ import annotations

from dataclasses import asdict, dataclass, replace

from vlcommon.enums import StrEnum, member


class ManagerType(StrEnum):
    NONE = "none"  # the baseline
    SAUM = "saum"  # static aggregation: learned weights per expert and channel
    AAUM = "aaum"  # adaptive aggregation: per-token routing weights


class InjectionTargets(StrEnum):
    """Which visual tokens receive the managers' output (``grid``/``base``: the anyres crops / the base image)."""

    ALL = "all"
    BASE = "base"
    GRID = "grid"


@dataclass(frozen=True, kw_only=True, slots=True)
class ManagerConfig:
    type: ManagerType = ManagerType.NONE
    expert_layers: tuple[int, ...] = ()
    inject_layers: tuple[int, ...] = ()
    targets: InjectionTargets = InjectionTargets.ALL
    jitter: float = 0.02  # SAUM: multiplicative U(1 - jitter, 1 + jitter) noise in training
    aaum_noise_std: float = 1.0  # AAUM: Gaussian exploration noise on the routing logits in training

    def __post_init__(self) -> None:
        object.__setattr__(self, "expert_layers", tuple(int(i) for i in self.expert_layers))
        object.__setattr__(self, "inject_layers", tuple(int(i) for i in self.inject_layers))
        object.__setattr__(self, "type", member(ManagerType, self.type, "manager type"))
        object.__setattr__(self, "targets", member(InjectionTargets, self.targets, "manager targets"))
        if not 0 <= self.jitter < 1:
            raise ValueError(f"manager jitter={self.jitter} must be in [0, 1)")
        if self.aaum_noise_std < 0:
            raise ValueError(f"manager aaum_noise_std={self.aaum_noise_std} must be >= 0")
        if self.enabled and (not self.expert_layers or not self.inject_layers):
            raise ValueError(f"manager type={str(self.type)!r} needs expert_layers and inject_layers")
        for name in ("expert_layers", "inject_layers"):
            values = getattr(self, name)
            if len(set(values)) != len(values) or list(values) != sorted(values):
                raise ValueError(f"manager {name}={values} must be strictly increasing")

    @property
    def enabled(self) -> bool:
        return self.type is not ManagerType.NONE

    def validate(self, *, vision_layers: int, llm_layers: int) -> None:
        """Check indices against the real depths; raises ``ValueError`` naming the index and the valid range."""
        for index in self.expert_layers:
            if not 1 <= index <= vision_layers:
                raise ValueError(f"manager expert layer {index} is out of range: valid are 1..{vision_layers}")
        for index in self.inject_layers:
            if not 0 <= index < llm_layers:
                raise ValueError(f"manager inject layer {index} is out of range: valid are 0..{llm_layers - 1}")

    def to_dict(self) -> dict:
        """Plain JSON values (``config.json``): enums as their strings, index tuples as lists."""
        return {
            k: list(v) if isinstance(v, tuple) else str(v) if isinstance(v, StrEnum) else v
            for k, v in asdict(self).items()
        }

    @classmethod
    def from_dict(cls, value: dict | ManagerConfig | None) -> ManagerConfig:
        if value is None:
            return cls()
        if isinstance(value, cls):
            return value
        unknown = set(value) - set(cls.__dataclass_fields__)
        if unknown:
            raise ValueError(f"unknown manager config fields {sorted(unknown)}")
        return cls(**value)


def expert_layer_preset(name: str, vision_layers: int, k: int | None = None) -> tuple[int, ...]:
    """``top_half`` (paper default: 14..26 of 26), ``bottom_half``, ``all``, ``last_k`` (needs ``k``)."""
    half = vision_layers // 2
    presets = {
        "top_half": range(half + 1, vision_layers + 1),
        "bottom_half": range(1, half + 1),
        "all": range(1, vision_layers + 1),
    }
    if name == "last_k":
        if k is None or not 1 <= k <= vision_layers:
            raise ValueError(f"expert preset 'last_k' needs 1 <= k <= {vision_layers}, got k={k}")
        return tuple(range(vision_layers - k + 1, vision_layers + 1))
    if name not in presets:
        raise ValueError(f"expert preset {name!r} is not one of {sorted(presets) + ['last_k']}")
    return tuple(presets[name])


def inject_layer_preset(llm_layers: int, *, count: int | None = None, interval: int | None = None) -> tuple[int, ...]:
    """Managers at equal intervals from the first decoder layer.

    ``count=6`` on 24 layers gives interval 4: indices 0, 4, 8, 12, 16, 20 (the paper's default). ``interval``
    alone places a manager every ``interval`` layers from layer 0.
    """
    if (count is None) == (interval is None):
        raise ValueError("give exactly one of count and interval")
    if count is not None:
        if not 1 <= count <= llm_layers:
            raise ValueError(f"inject count={count} must be in 1..{llm_layers}")
        interval = llm_layers // count
        return tuple(range(0, interval * count, interval))
    if not 1 <= interval <= llm_layers:
        raise ValueError(f"inject interval={interval} must be in 1..{llm_layers}")
    return tuple(range(0, llm_layers, interval))


def paper_default(kind: str = "saum", *, vision_layers: int = 26, llm_layers: int = 24) -> ManagerConfig:
    """6 managers every 4 layers from the first, experts from the top half of the tower."""
    return ManagerConfig(
        type=kind,
        expert_layers=expert_layer_preset("top_half", vision_layers),
        inject_layers=inject_layer_preset(llm_layers, count=min(6, llm_layers)),
    )


class ExpertPreset(StrEnum):
    """Which vision layers a manager aggregates, relative to the tower's depth."""

    TOP_HALF = "top_half"  # the paper's default: 14..26 of 26
    BOTTOM_HALF = "bottom_half"
    ALL = "all"
    LAST = "last"  # the last ``k``
    EXPLICIT = "explicit"  # ``layers``, 1-based


class InjectPreset(StrEnum):
    """Where managers go in the decoder, relative to its depth."""

    COUNT = "count"  # ``n`` managers at equal intervals from layer 0 (the paper: 6)
    INTERVAL = "interval"  # one every ``n`` layers from layer 0
    EXPLICIT = "explicit"  # ``layers``, 0-based


@dataclass(frozen=True, kw_only=True, slots=True)
class ExpertChoice:
    preset: ExpertPreset = ExpertPreset.TOP_HALF
    k: int | None = None  # LAST only
    layers: tuple[int, ...] = ()  # EXPLICIT only

    def __post_init__(self) -> None:
        object.__setattr__(self, "preset", member(ExpertPreset, self.preset, "manager experts preset"))
        object.__setattr__(self, "layers", tuple(self.layers))
        if (self.preset is ExpertPreset.LAST) != (self.k is not None):
            raise ValueError(f"manager experts: k goes with preset 'last' only (preset {str(self.preset)!r})")
        if (self.preset is ExpertPreset.EXPLICIT) != bool(self.layers):
            raise ValueError(f"manager experts: layers go with preset 'explicit' only (preset {str(self.preset)!r})")

    def resolve(self, vision_layers: int) -> tuple[int, ...]:
        if self.preset is ExpertPreset.EXPLICIT:
            return self.layers
        if self.preset is ExpertPreset.LAST:
            return expert_layer_preset("last_k", vision_layers, k=self.k)
        return expert_layer_preset(self.preset.value, vision_layers)


@dataclass(frozen=True, kw_only=True, slots=True)
class InjectChoice:
    preset: InjectPreset = InjectPreset.COUNT
    n: int | None = 6  # COUNT and INTERVAL
    layers: tuple[int, ...] = ()  # EXPLICIT only

    def __post_init__(self) -> None:
        object.__setattr__(self, "preset", member(InjectPreset, self.preset, "manager inject preset"))
        object.__setattr__(self, "layers", tuple(self.layers))
        if (self.preset is InjectPreset.EXPLICIT) == (self.n is not None):
            raise ValueError(f"manager inject: preset {str(self.preset)!r} takes {'layers' if self.n else 'n'}")
        if (self.preset is InjectPreset.EXPLICIT) != bool(self.layers):
            raise ValueError(f"manager inject: layers go with preset 'explicit' only (preset {str(self.preset)!r})")

    def resolve(self, llm_layers: int) -> tuple[int, ...]:
        if self.preset is InjectPreset.EXPLICIT:
            return self.layers
        return inject_layer_preset(llm_layers, **{self.preset.value: self.n})


@dataclass(frozen=True, kw_only=True, slots=True)
class ManagerChoice:
    """What a recipe or the ``--manager_*`` flags say of the managers, before the model's depths are known; a
    field left ``None`` keeps what the model has (its checkpoint's config, or the paper's default)."""

    type: ManagerType | None = None
    experts: ExpertChoice | None = None
    inject: InjectChoice | None = None
    targets: InjectionTargets | None = None
    jitter: float | None = None

    @property
    def given(self) -> bool:
        return any(getattr(self, name) is not None for name in self.__slots__)

    def over(self, base: ManagerChoice | None) -> ManagerChoice:
        """This choice where it says something, ``base`` elsewhere (flags over a recipe)."""
        if base is None:
            return self
        values = {name: getattr(self, name) for name in self.__slots__}
        return replace(base, **{k: v for k, v in values.items() if v is not None})

    def resolve(self, current: ManagerConfig, *, vision_layers: int, llm_layers: int) -> ManagerConfig:
        """``current`` with this choice applied, checked against the real depths. A manager without experts or
        injection points anywhere gets the paper's: the top half of the tower, 6 (at most) managers."""
        kind = self.type if self.type is not None else current.type
        if kind is ManagerType.NONE:
            return ManagerConfig()
        experts = self.experts.resolve(vision_layers) if self.experts is not None else current.expert_layers
        inject = self.inject.resolve(llm_layers) if self.inject is not None else current.inject_layers
        config = ManagerConfig(
            type=kind,
            expert_layers=experts or expert_layer_preset("top_half", vision_layers),
            inject_layers=inject or inject_layer_preset(llm_layers, count=min(6, llm_layers)),
            targets=self.targets if self.targets is not None else current.targets,
            jitter=self.jitter if self.jitter is not None else current.jitter,
            aaum_noise_std=current.aaum_noise_std,
        )
        config.validate(vision_layers=vision_layers, llm_layers=llm_layers)
        return config
