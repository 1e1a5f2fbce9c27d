"""The intake: an HTTP receiver for Alertmanager webhooks and agents' events (`opsrunner intake serve`).

schema.py validates a request and turns it into reports.Report records; auth.py checks the bearer token
and Standard Webhooks signatures (with replay protection); spool.py keeps every accepted request on disk
until it is handled; app.py is the Starlette app, its queue and worker; deadman.py pages when no
heartbeat finishes; server.py runs it on uvicorn. What happens to each report is assess.py's work.
"""
