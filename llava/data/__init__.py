"""Training data: conversation formatting (labels), datasets, collation."""
