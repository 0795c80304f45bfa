"""What the LLaVA-OV and ManagerTower stacks share: the bad-record ledger and atomic writes (``ledger``), checkpoint
completeness markers, verification and rotation (``checkpoints``, ``callbacks``), confidence intervals
(``intervals``), headless plotting (``plotting``), the image decoder and RGB conversion (``images``), the
weight-converter protocol (``state_dict``), ``StrEnum`` and enum coercion (``enums``) and the FLOP counter of both
budget tools (``flops``)."""
