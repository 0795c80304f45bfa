"""Cosine similarity between consecutive decoder layers' outputs, visual and textual parts separately, with
the manager injection layers marked (the paper's Fig. 18). Layer 1 is compared with the input embeddings."""

from llava.analysis.cli import main_for

main = main_for("layer_similarity", __doc__)

if __name__ == "__main__":
    main()
