"""The ManagerTower CPU demo: ``python -m playground.managertower [--work DIR] [--reduced] [--seed 0]``.

The paper's Two-Tower pipeline at toy scale, end to end through the repository's own code (docs/managertower_demo.md):

1. generated data (``managertower.data.synthetic`` writers, the real table builders): :mod:`.data`;
2. tiny unimodal experts pre-trained first, as the paper starts from CLIP and RoBERTa: :mod:`.experts`;
3. per variant (METER, BridgeTower, ManagerTower with SAUM, with AAUM), vision-language pre-training (MLM + ITM),
   then VQA and retrieval fine-tuning through the train entry: :mod:`.runs`, one process per variant
   (:mod:`.worker`);
4. held-out VQA scores, blind baselines, retrieval's chance and ceiling, the weight figures: :mod:`.scoring`;
5. 95% intervals, the differences from BridgeTower, the paper's tables and the checks: :mod:`.report`,
   :mod:`.markdown`.

Settings (sizes, steps, data counts, the variants) are in :mod:`.settings`.
"""
