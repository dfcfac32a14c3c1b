"""N-PG-IGT, (N)-HARPG and their baselines (docs/design.md §4.7): the methods (`methods`), the
named problems with their oracles (`problems`) and the sample-complexity sweep (`complexity`)."""
