"""`pglab copg`: filled in with the CoPG bandit trainers (DESIGN §4.4)."""
