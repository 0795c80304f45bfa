"""Mean KL divergence between the attention distributions of every ordered pair of heads, per decoder layer,
on the same two blocks as attention_entropy (the paper's Figs. 20, 33)."""

from llava.analysis.cli import main_for

main = main_for("head_kl", __doc__)

if __name__ == "__main__":
    main()
