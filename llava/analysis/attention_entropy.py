"""Mean entropy of the attention weight distributions per decoder layer, for visual self-attention (image-token
queries over image-token keys) and text-to-visual attention (text queries after an image over image-token keys),
each block renormalised over its keys (the paper's Figs. 19, 32)."""

from llava.analysis.cli import main_for

main = main_for("attention_entropy", __doc__)

if __name__ == "__main__":
    main()
