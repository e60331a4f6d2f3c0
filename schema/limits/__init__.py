"""Operation limits and exposure controls, as strawberry extensions and
graphql-core validation rules (one per module); ``extensions.py`` assembles
them from ``OperationLimits``."""
