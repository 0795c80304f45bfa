"""Managers' aggregation weights per receiving decoder layer and expert (the paper's Figs. 7, 24-25 style):
SAUM's learned weights (mean over channels; no samples needed) and AAUM's per-token weights (mean over the visual
tokens of the samples)."""

from llava.analysis.cli import main_for

main = main_for("manager_weights", __doc__)

if __name__ == "__main__":
    main()
