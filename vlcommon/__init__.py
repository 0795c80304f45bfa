"""What the LLaVA-OV and ManagerTower stacks share: the bad-record ledger and atomic writes (``ledger``), checkpoint
completeness markers, verification and rotation (``checkpoints``, ``callbacks``), confidence intervals
(``intervals``), headless plotting (``plotting``) and the image decoder and RGB conversion (``images``)."""
