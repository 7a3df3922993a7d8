"""The method's math: box ops, the region parametrisation, GT checks, assignment, the loss,
anchor sets. Pure functions of arrays (NumPy or jax.numpy); nothing here reads files."""
