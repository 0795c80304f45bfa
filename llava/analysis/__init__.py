"""The paper's analysis figures as instruments for any checkpoint (Figs. 7, 18-20, 24-25, 27, 32-33).

``python -m llava.analysis --checkpoint A --checkpoint B (--data X | --tasks T) --out DIR`` measures everything in
one pass per checkpoint; one metric at a time:

* ``python -m llava.analysis.layer_similarity`` -- cosine similarity of consecutive decoder layers' outputs,
  visual and textual parts (Fig. 18);
* ``python -m llava.analysis.attention_entropy`` -- entropy of visual self-attention and text-to-visual attention
  per decoder layer (Figs. 19, 32);
* ``python -m llava.analysis.head_kl`` -- KL divergence between attention heads per decoder layer (Figs. 20, 33);
* ``python -m llava.analysis.attention_distance`` -- SigLIP mean attention distance per head and layer (Fig. 27);
* ``python -m llava.analysis.manager_weights`` -- managers' aggregation weights per receiving layer and expert,
  SAUM and AAUM (Figs. 7, 24-25).

Pieces: ``stats`` (the formulas), ``probes`` (forward hooks, streamed), ``samples`` (LLaVA data, lmms-eval tasks),
``checkpoints``, ``tables`` (CSV), ``plots`` (PNG), ``run`` (the loop), ``cli``. See docs/analysis.md.
"""
