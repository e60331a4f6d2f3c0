"""The developer program: apps registered with the gateway, their client
secrets, the gateway's own OAuth 2.0 token endpoint (``client_credentials``)
and the directory that turns the gateway's own tokens into principals."""
