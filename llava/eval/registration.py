"""lmms-eval entry point (group ``lmms_eval.models``): makes ``--model llava_ov_manager`` resolvable.

lmms-eval 0.7.3 resolves ``--model`` through its ModelRegistryV2 manifests; ``@register_model`` alone is not read
by the evaluator (``reference/lmms_eval_spec.md`` §2.1). The package must be installed for the entry point to exist.
"""

from __future__ import annotations

MODELS = {
    "llava_ov_manager": "llava.eval.lmms_model.LlavaOvManager",  # our checkpoints, batched
    "llava_ov_replay": "llava.eval.replay.ReplayModel",  # answers of a --predict_only pass, for judging later
}


def manifests():
    from lmms_eval.models.registry_v2 import ModelManifest

    return [ModelManifest(model_id=name, simple_class_path=path) for name, path in MODELS.items()]
