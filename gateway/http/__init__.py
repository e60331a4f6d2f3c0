"""The HTTP edge of the gateway: transport errors as RFC 9457 problems, body
and media-type guards, and the GraphQL-over-HTTP view."""
