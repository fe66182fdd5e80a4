"""`cmkt serve`: a trained run's mastery over HTTP (cmkt.serve)."""
from __future__ import annotations

import sys


def add_parsers(sub) -> None:
    s = sub.add_parser("serve", help="serve a run's mastery to apps over HTTP (JSON; OpenAPI at /docs)",
                       description="Serve a trained run over HTTP: post a student's answers, read back "
                       "per-skill mastery, levels and what to practise next. Every answer is stored in a "
                       "database before it is acknowledged. Every endpoint but /v1/health needs an API key "
                       "(Authorization: Bearer KEY) from --keys FILE or $CMKT_API_KEYS: one key per line, "
                       "optionally followed by the student-id prefixes it may read and write.")
    s.add_argument("run", metavar="RUN", help="a run folder (or checkpoint file)")
    s.add_argument("--host", default="127.0.0.1", help="address to bind (default 127.0.0.1: this machine only)")
    s.add_argument("--port", type=int, default=8000)
    s.add_argument("--db", default="events.sqlite",
                   help="SQLite file (default events.sqlite; WAL mode) or postgresql://USER@HOST:PORT/DB")
    s.add_argument("--keys", default=None, metavar="FILE", help="API keys (default: $CMKT_API_KEYS)")
    s.add_argument("--sqlite-sync", choices=("normal", "full"), default="normal",
                   help="SQLite synchronous setting: normal (default) loses nothing on a killed service; "
                        "full also fsyncs every commit (survives power loss, slower)")
    s.add_argument("--max-batch", type=int, default=1000, help="most answers in one request (default 1000)")
    s.add_argument("--max-body", type=int, default=1 << 20, help="largest request body in bytes (default 1 MiB)")
    s.add_argument("--cache-students", type=int, default=20_000,
                   help="students kept in memory; others are rebuilt from the database when needed")
    s.add_argument("--threads", type=int, default=1, help="torch threads (default 1: requests run in parallel)")
    s.add_argument("--no-model-process", dest="model_process", action="store_false",
                   help="run the model in the service's own process (default: a process of its own, so its "
                        "passes do not wait for the request threads for the GIL: half the time per batch "
                        "under load, docs/RESULTS.md; it costs one more copy of the model in memory and "
                        "1-2 ms per answer at one client)")
    s.add_argument("--access-log", action="store_true", help="log every request line (never keys)")


def cmd_serve(a) -> int:
    from cmkt.errors import CmktError
    if not 0 < a.port < 65536:
        raise CmktError(f"--port {a.port}: must be 1 to 65535")
    for name in ("max_batch", "max_body", "cache_students"):
        if getattr(a, name) < 1:
            raise CmktError(f"--{name.replace('_', '-')} {getattr(a, name)}: must be at least 1")
    from cmkt.serve.keys import load_keys
    keys = load_keys(a.keys)
    import uvicorn
    from cmkt.serve.app import create_app
    from cmkt.serve.service import Service, Settings
    service = Service(Settings(run=a.run, db=a.db, max_batch=a.max_batch, max_body=a.max_body,
                               cache_students=a.cache_students, sqlite_sync=a.sqlite_sync, threads=a.threads,
                               model_process=a.model_process))
    app = create_app(service, keys)
    print(f"serving {service.run_name} ({service.meta.get('kind')}, {service.scorer.C} skills) on "
          f"http://{a.host}:{a.port}/v1 (docs at /docs); answers in {service.store.shown}; "
          f"{len(keys)} API key{'s' * (len(keys) != 1)} from {keys.source}", file=sys.stderr, flush=True)
    try:
        uvicorn.run(app, host=a.host, port=a.port, access_log=a.access_log, log_level="warning")
    finally:
        service.close()
    return 0


COMMANDS: dict = {"serve": cmd_serve}
