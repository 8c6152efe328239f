"""The sync transport (task processes): one ``requests.Session`` per hook, and one request on it."""

from __future__ import annotations

import logging
import os
import threading

import requests

from airflow_provider_cdata.transport.answers import network_error
from airflow_provider_cdata.transport.routes import USER_AGENT, Answer, Call, CallState, log_request

SESSION_POOL_SIZE = 32  # keep-alive connections one hook's session keeps per host


def new_session(api_url: str) -> requests.Session:
    session = requests.Session()
    # What requests would read from the environment on every call (the proxy variables, scanned twice,
    # and ~/.netrc: ~0.3 ms of a ~1.3 ms call on a 2-core box), read once for the one host this session
    # talks to. Also: a ~/.netrc entry for that host can no longer replace the bearer token.
    session.proxies = requests.utils.get_environ_proxies(api_url)
    session.verify = os.environ.get("REQUESTS_CA_BUNDLE") or os.environ.get("CURL_CA_BUNDLE") or True
    session.trust_env = False
    # Room for ClearMetadataOperator's threads: beyond the pool size urllib3 would open and discard a
    # new connection per call.
    adapter = requests.adapters.HTTPAdapter(pool_maxsize=SESSION_POOL_SIZE)
    session.mount("https://", adapter)
    session.mount("http://", adapter)
    session.headers.update(
        {"User-Agent": f"{USER_AGENT} python-requests/{requests.__version__}", "Accept": "application/json"}
    )
    return session


class SyncTransport:
    """Sends one request of a call to ``api_url`` on a session made on first use, shared by threads."""

    def __init__(self, api_url: str, timeout: float, logger: logging.Logger) -> None:
        self.api_url = api_url
        self.timeout = timeout
        self._logger = logger
        self._lock = threading.Lock()
        self._session: requests.Session | None = None

    @property
    def session(self) -> requests.Session:
        if self._session is None:
            with self._lock:  # threads racing here would each make a session, and connections
                if self._session is None:
                    self._session = new_session(self.api_url)
        return self._session

    def send(self, call: Call, token: str, state: CallState) -> Answer:
        started = state.sending(token)
        try:
            response = self.session.request(
                call.method,
                self.api_url + call.path,
                json=call.json,
                params=call.params,
                headers={"Authorization": f"Bearer {token}"},
                timeout=(self.timeout, self.timeout),
                allow_redirects=False,
            )
        except (requests.ConnectionError, requests.Timeout, requests.exceptions.ChunkedEncodingError) as exc:
            log_request(self._logger, call, type(exc).__name__, started, state)
            raise network_error(call, exc, state) from None
        log_request(self._logger, call, response.status_code, started, state)
        return Answer(response.status_code, response.headers, response.content, state.requests)

    def close(self) -> None:
        """Close the session (its keep-alive connections); a later request makes a new one."""
        if self._session is not None:
            self._session.close()
            self._session = None
