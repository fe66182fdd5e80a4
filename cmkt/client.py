"""A small Python client of `cmkt serve` (httpx).

    from cmkt.client import Client
    with Client("http://127.0.0.1:8000", key="k-admin-0001") as c:
        c.post_answers("north-17", [{"skill": "3", "correct": 1}])
        c.student("north-17")["skills"]          # per-skill mastery, level, attempts
        c.next("north-17", "4")["prediction"]     # P(correct) of a next attempt on skill 4

A refused request raises ClientError with the service's status and one-line message.
"""
from __future__ import annotations

from urllib.parse import quote

import httpx


class ClientError(Exception):
    def __init__(self, status: int, message: str):
        super().__init__(f"{status}: {message}")
        self.status = status
        self.message = message


class Client:
    def __init__(self, url: str = "http://127.0.0.1:8000", key: str | None = None, timeout: float = 30.0,
                 transport: httpx.BaseTransport | None = None):
        headers = {"Authorization": f"Bearer {key}"} if key else {}
        self.http = httpx.Client(base_url=url.rstrip("/") + "/v1", headers=headers, timeout=timeout,
                                 transport=transport)

    def __enter__(self) -> "Client":
        return self

    def __exit__(self, *exc) -> None:
        self.close()

    def close(self) -> None:
        self.http.close()

    def post_answer(self, student: str, skill, correct, timestamp=None) -> dict:
        """Store and score one answer; returns its result (prediction, parts, mastery)."""
        body = {"skill": skill, "correct": correct}
        if timestamp is not None:
            body["timestamp"] = timestamp
        return self._call("POST", f"/students/{quote(student, safe='')}/answers", json=body)["results"][0]

    def post_answers(self, student: str, answers: list[dict]) -> dict:
        """Store and score several answers ({skill, correct, timestamp?}) in one transaction."""
        return self._call("POST", f"/students/{quote(student, safe='')}/answers", json={"answers": list(answers)})

    def student(self, student: str) -> dict:
        return self._call("GET", f"/students/{quote(student, safe='')}")

    def next(self, student: str, skill) -> dict:
        return self._call("GET", f"/students/{quote(student, safe='')}/next", params={"skill": str(skill)})

    def health(self) -> dict:
        return self._call("GET", "/health")

    def model(self) -> dict:
        return self._call("GET", "/model")

    def _call(self, method: str, path: str, **kw) -> dict:
        r = self.http.request(method, path, **kw)
        if r.status_code >= 400:
            try:
                message = r.json().get("error") or r.text
            except ValueError:
                message = r.text
            raise ClientError(r.status_code, str(message)[:500])
        return r.json()
