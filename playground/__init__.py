"""Playground: a small, deterministic synthetic curriculum (images, LLaVA JSON, lmms-eval tasks) for the CPU demo.

``python -m playground.data OUT [--seed 0] [--reduced]`` writes it; :mod:`playground.images` draws the scenes.
"""
