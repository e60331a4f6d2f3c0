"""Metrics, structured logs and traces for the gateway: one concept per module.

- ``request``    what one HTTP request is known to be (id, operation, outcome), shared by all
- ``operations`` the strawberry extension that fills in the GraphQL operation and outcome
- ``metrics``    Prometheus families and the ``/metrics`` endpoint
- ``logs``       the JSON formatter and the one-line-per-request log
- ``tracing``    OpenTelemetry set-up, httpx instrumentation, resolver spans
- ``middleware`` the ASGI middleware that times a request and hands it to the three above

None of them may record personal data: no tokens, no variables, no query
strings, no register numbers. Operation names are client-chosen, so they are
checked (``request.operation_label``) before they reach a label or a log.
"""
