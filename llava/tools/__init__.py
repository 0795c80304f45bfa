"""Command-line tools that inspect models: ``python -m llava.tools.budget``."""
