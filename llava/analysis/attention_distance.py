"""SigLIP mean attention distance: per head and layer, the attention-weighted Euclidean distance in pixels
between a query patch and the patches it attends to, averaged over patches, crops and samples (the paper's
Fig. 27, ViT's measure)."""

from llava.analysis.cli import main_for

main = main_for("attention_distance", __doc__)

if __name__ == "__main__":
    main()
