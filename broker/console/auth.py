"""Who may use the console: sessions, the login page's check, and CSRF tokens.

Sessions are random tokens in an HttpOnly, SameSite=Strict cookie scoped to /console, held in
memory (a restart logs everyone out). Each session has its own CSRF token, which every form
carries and every POST must echo (as the `csrf` field or the X-CSRF-Token header).

When the broker runs with secrets, a session is made only by logging in with the SecretId and
SecretKey; without them, the first page visit gets a session silently. Either way, changes need
the session and its token, so another site cannot drive the console through the browser of
someone who has it open.
"""

from __future__ import annotations

import hmac
import secrets
import time
from collections import OrderedDict
from dataclasses import dataclass, field

COOKIE = "cmq_console"
COOKIE_PATH = "/console"
IDLE_SECONDS = 12 * 3600  # a session unused this long is gone
MAX_SESSIONS = 1000  # oldest dropped first: visits without secrets make sessions freely


@dataclass
class Session:
    token: str
    csrf: str
    authenticated: bool  # logged in with the secrets (False: a console without secrets)
    last_used: float = field(default_factory=time.monotonic)


class Sessions:
    def __init__(self, secret_id: str | None, secret_key: str | None):
        self._secrets = (secret_id, secret_key) if secret_id and secret_key else None
        self._by_token: OrderedDict[str, Session] = OrderedDict()

    @property
    def login_required(self) -> bool:
        return self._secrets is not None

    def check_secrets(self, secret_id: str, secret_key: str) -> bool:
        """Both must match; compared in constant time, and both always compared."""
        if self._secrets is None:
            return True
        want_id, want_key = self._secrets
        id_ok = hmac.compare_digest(secret_id.encode(), want_id.encode())
        key_ok = hmac.compare_digest(secret_key.encode(), want_key.encode())
        return id_ok and key_ok

    def create(self, authenticated: bool) -> Session:
        session = Session(secrets.token_urlsafe(32), secrets.token_urlsafe(32), authenticated)
        self._by_token[session.token] = session
        while len(self._by_token) > MAX_SESSIONS:
            self._by_token.popitem(last=False)
        return session

    def get(self, token: str | None) -> Session | None:
        """The live session of a cookie value, or None; a session good enough for this broker
        (logged in, when login is required)."""
        if not token:
            return None
        session = self._by_token.get(token)
        if session is None:
            return None
        now = time.monotonic()
        if now - session.last_used > IDLE_SECONDS or (self.login_required and not session.authenticated):
            del self._by_token[token]
            return None
        session.last_used = now
        self._by_token.move_to_end(token)
        return session

    def end(self, token: str | None) -> None:
        if token:
            self._by_token.pop(token, None)


def csrf_ok(session: Session, offered: str | None) -> bool:
    return bool(offered) and hmac.compare_digest(offered.encode(), session.csrf.encode())
