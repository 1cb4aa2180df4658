"""What analysis costs: provider billing rules (the price book), estimates and the ledger of what was spent."""
