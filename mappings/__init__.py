"""The mapping layer: selectors and metric definitions turned into queries and pure computations."""
