"""The data-access log: who read or wrote which of a citizen's data, and why.

Every event is one row of a single hash chain (``chain.py``); ``verify.py``
walks the chain and names the first row that does not fit. Events carry
form field *names*, never values.
"""
