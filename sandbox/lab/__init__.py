"""The resilience lab: a generic HTTP API whose failures are switched at run time.

It exercises the resilience downloader middlewares (rate limiting, circuit
breaker, retries with dead letters, expiring bearer tokens, block detection)
and their throughput. All state is kept per *tenant*, the ``<tenant>`` of
``/t/<tenant>/...``, so tests sharing one sandbox process do not interfere.

    GET  /t/<t>/page/<n>        ~2 KB HTML page with links to page/3n+1..3n+3 (relative)
    GET  /t/<t>/json/<n>        {"n": n, "items": [...]}
    POST /t/<t>/oauth/token     client credentials (form, JSON or Basic) -> a Bearer token for token_ttl s
    GET  /t/<t>/protected/<n>   JSON like /json, needs a valid unexpired Bearer token of this tenant
    GET  /t/<t>/blocked/<kind>  captcha (200), interstitial (503), soft-limit (200), forbidden (403)
    POST /t/<t>/config          merge settings (``tenant.DEFAULTS``), returns them; GET reads them
    POST /t/<t>/down            {"seconds": S}: everything fails with fail_status for S seconds
    POST /t/<t>/clock           {"freeze": bool, "advance": S, "real": bool}: the tenant's time, for tests
    GET  /t/<t>/stats           counters, config, and the recorded arrivals, 429 times and rate windows

Modules: ``tenant`` (settings, per-tenant state and counters), ``pages``
(bodies) and ``app`` (the aiohttp service; importing it registers ``lab``).
"""
