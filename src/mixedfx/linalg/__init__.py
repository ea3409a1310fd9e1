"""Cross-product blocks and the blocked Cholesky factorization of the PLS system."""
