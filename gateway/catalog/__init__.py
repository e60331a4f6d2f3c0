"""The service catalog: models, loading and form validation."""
