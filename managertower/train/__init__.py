"""Training the Two-Tower tasks: typed flags, optimiser groups, the Trainer and the entry."""
