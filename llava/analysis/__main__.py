"""Every analysis metric in one pass per checkpoint (``--metrics`` picks a subset)."""

from llava.analysis.cli import main

if __name__ == "__main__":
    main()
