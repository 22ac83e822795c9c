"""A real-time app on websuckets: ``python -m`` this package to serve it."""
