"""Analyses of a ManagerTower checkpoint (paper Figs. 4, 7 and 23-25): the managers' aggregation weights on the
unimodal experts and the similarity of consecutive managers' aggregated representations.

    python -m managertower.analysis --checkpoint ckpt --out report   # seeded random inputs by default
    analyse(model, batches, out_dir)  # any iterable of {"input_ids", "attention_mask", "pixel_values"} dicts
"""

from managertower.analysis.run import analyse, random_batches
from managertower.analysis.similarity import SimilarityAccumulator, SimilarityRecord
from managertower.analysis.weights import WeightAccumulator, WeightRecord

__all__ = [
    "SimilarityAccumulator", "SimilarityRecord", "WeightAccumulator", "WeightRecord", "analyse", "random_batches",
]  # fmt: skip
