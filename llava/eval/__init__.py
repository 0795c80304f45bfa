"""Evaluation with lmms-eval: our lmms-eval model, benchmark metadata, run guards and the results report.

Importing this package does not import lmms-eval; ``llava.eval.lmms_model`` does.
"""
