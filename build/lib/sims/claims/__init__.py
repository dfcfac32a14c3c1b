"""Claims of the ledger, one topic module each; `sims.ledger.load_all()` imports every module here."""
