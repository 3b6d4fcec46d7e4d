"""A simulated events API: paginated, rate-limited, cursor-based, with real APIs' quirks.

It stands in for the kind of API the ``events`` spider ingests exactly once
(shared/reference/events-api.md describes the real one it imitates):

- ``GET /events?limit=&cursor=&since=&until=&type=`` with the key in ``X-API-Key``
  (or ``?api_key=``, on a smaller budget of its own); the body is nested
  (``data``, ``pagination``, ``meta``) unless the flat form is switched on.
- Pages up to ``page_cap`` events (bigger limits silently capped), ascending
  (timestamp, id); opaque base64 cursors that expire; since/until ranges that a
  switch makes the server silently ignore.
- Timestamps in four forms mixed within a page; an id field whose name varies.
- A fixed-window budget per key pool with ``X-RateLimit-*`` headers on every
  response and 429 + ``Retry-After``; injectable 5xx, truncated 200 bodies and
  repeated events (at-least-once delivery), reproducible from the seed.
- ``GET /events/stats`` and ``POST /events/config`` let tests and benches
  observe and retune one running server; ``POST /events/clock`` freezes or
  advances its time, so tests of windows and expiry need no sleeping.

Modules: ``generate`` (the data set, as pre-rendered bytes), ``cursors``,
``ratelimit``, ``clock``, ``config`` (settings shared by the CLI and the config endpoint)
and ``app`` (the aiohttp service; importing it registers ``events``).
"""
