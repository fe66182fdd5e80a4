"""`cmkt serve`: a trained run's mastery for apps, over HTTP (DESIGN.md, "The service").

state.py    per-student incremental state: one forward pass per answer, equal to `cmkt export`
batcher.py  concurrent requests' windows in one padded batch
worker.py   the model in a process of its own (its passes do not wait for the GIL)
store.py    the acknowledged answers in SQLite (WAL) or PostgreSQL (SQLAlchemy)
keys.py     API keys with student-id prefixes
service.py  the work behind the endpoints (no HTTP)
app.py      the FastAPI app: /v1 endpoints, JSON errors, body limit
"""
