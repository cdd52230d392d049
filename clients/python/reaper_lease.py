"""A client of reaper's lease API (docs/http-api.md, config/openapi.json) for Python 3.8+,
standard library only: acquire a lease on an owner key, renew it with its own token, release
it — and a heartbeat thread that keeps it renewed and says when it is lost.

    from reaper_lease import LeaseClient, Heartbeat

    client = LeaseClient("http://127.0.0.1:8476", token=open("/run/secrets/reaper-token").read().strip())
    lease = client.acquire("session:42", ttl="60s")
    with Heartbeat(client, lease, on_lost=lambda why: print("lease lost:", why)) as beat:
        ...  # work while beat.lost is not set
    client.release(lease)

A lease is lost when a renewal answers 409 (it expired or was released: nothing is changed,
docs/safety.md §15), 404 or 403, or when no renewal has been confirmed for a whole ttl (the
deadline: by the holder's own clock the store may already let it expire). The holder must
then stop using what the lease protects.
"""

import json
import threading
import time
import urllib.error
import urllib.parse
import urllib.request

__all__ = ["LeaseClient", "Lease", "Heartbeat", "LeaseLost", "ApiError"]


class ApiError(Exception):
    """The daemon answered an error (`status`, its `error` text) or could not be reached (status 0)."""

    def __init__(self, status, message, lost=None):
        super().__init__(f"HTTP {status}: {message}" if status else message)
        self.status = status
        self.message = message
        self.lost = lost


class LeaseLost(ApiError):
    """The lease is not the caller's any more: `why` is expired, released, not-found, not-holder or deadline."""

    def __init__(self, lease_id, why, status=409, message=None):
        super().__init__(status, message or f"lease {lease_id} is {why}", lost=why)
        self.lease_id = lease_id
        self.why = why


class Lease(dict):
    """A lease as the API answers it (leaseId, key, holder, generation, ttlSeconds, expiresAt, …), plus its token."""

    @property
    def id(self):
        return self["leaseId"]

    @property
    def token(self):
        return self.get("token")


class LeaseClient:
    def __init__(self, base_url, token=None, timeout=10.0, ssl_context=None):
        self.base_url = base_url.rstrip("/")
        self.token = token
        self.timeout = timeout
        self.ssl_context = ssl_context

    def _call(self, method, path, body=None, lease_token=None, timeout=None):
        headers = {"accept": "application/json"}
        if self.token:
            headers["authorization"] = f"Bearer {self.token}"
        if lease_token is not None:
            headers["x-lease-token"] = lease_token
        data = None
        if body is not None:
            data = json.dumps(body).encode("utf-8")
            headers["content-type"] = "application/json"
        request = urllib.request.Request(self.base_url + path, data=data, method=method, headers=headers)
        try:
            with urllib.request.urlopen(request, timeout=self.timeout if timeout is None else timeout, context=self.ssl_context) as response:
                text = response.read().decode("utf-8")
                return response.status, (json.loads(text) if text else None)
        except urllib.error.HTTPError as error:
            text = error.read().decode("utf-8", "replace")
            try:
                answer = json.loads(text)
            except ValueError:
                answer = {"error": text}
            return error.code, answer
        except (urllib.error.URLError, OSError) as error:
            raise ApiError(0, f"cannot reach {self.base_url}: {getattr(error, 'reason', error)}") from error

    @staticmethod
    def _fail(status, answer, lease_id=None):
        answer = answer or {}
        lost = answer.get("lost")
        if lost and lease_id is not None:
            raise LeaseLost(lease_id, lost, status, answer.get("error"))
        raise ApiError(status, answer.get("error", "no error given"), lost)

    def acquire(self, key, ttl, holder=None):
        """Take a lease on `key` for `ttl` ("60s", "5m", or a number of seconds); the answer carries its token."""
        body = {"key": key, "ttl": ttl}
        if holder is not None:
            body["holder"] = holder
        status, answer = self._call("POST", "/v1/leases", body)
        if status != 201:
            self._fail(status, answer)
        return Lease(answer)

    def renew(self, lease, ttl=None, timeout=None):
        """Renew with the lease's own token; raises LeaseLost when it expired or was released.
        `timeout` (seconds) bounds this call's waits instead of the client's."""
        status, answer = self._call("POST", f"/v1/leases/{urllib.parse.quote(lease.id)}/renew", {} if ttl is None else {"ttl": ttl}, lease.token, timeout)
        if status != 200:
            self._fail(status, answer, lease.id)
        renewed = Lease(answer)
        renewed["token"] = lease.token
        return renewed

    def release(self, lease):
        status, answer = self._call("DELETE", f"/v1/leases/{urllib.parse.quote(lease.id)}", None, lease.token)
        if status != 204:
            self._fail(status, answer, lease.id)

    def get(self, lease_id):
        status, answer = self._call("GET", f"/v1/leases/{urllib.parse.quote(lease_id)}")
        if status != 200:
            self._fail(status, answer, lease_id)
        return Lease(answer)

    def list(self, key=None, include_inactive=False, limit=None):
        query = {}
        if key is not None:
            query["key"] = key
        if include_inactive:
            query["all"] = "true"
        if limit is not None:
            query["limit"] = str(limit)
        status, answer = self._call("GET", "/v1/leases" + ("?" + urllib.parse.urlencode(query) if query else ""))
        if status != 200:
            self._fail(status, answer)
        return [Lease(item) for item in answer["leases"]]


class Heartbeat:
    """Renew `lease` every `interval` seconds (default a third of its ttl) on a daemon thread.

    `lost` is an Event set once the lease is lost (`why` says how); `on_lost(why)` is called
    then, once. A renewal that fails for another reason (the daemon unreachable, 503) is tried
    again at the next beat; if none succeeds before the lease's deadline — a whole ttl after the
    last confirmed renewal was sent — the lease is lost with why "deadline", at that moment: a
    renewal in flight waits no longer than what is left until then, so a daemon that stops
    answering cannot keep the holder working past it.
    """

    def __init__(self, client, lease, interval=None, on_lost=None):
        self.client = client
        self.lease = lease
        self.ttl = float(lease["ttlSeconds"])
        self.interval = interval if interval is not None else self.ttl / 3
        self.on_lost = on_lost
        self.lost = threading.Event()
        self.why = None
        self.renewals = 0
        self.errors = []
        self._stop = threading.Event()
        self._deadline = time.monotonic() + self.ttl
        self._thread = threading.Thread(target=self._run, name=f"reaper-lease-{lease.id}", daemon=True)

    def start(self):
        self._thread.start()
        return self

    def stop(self):
        self._stop.set()
        if self._thread.is_alive():
            self._thread.join()

    def __enter__(self):
        return self.start()

    def __exit__(self, *exc):
        self.stop()

    def _lose(self, why):
        self.why = why
        self.lost.set()
        if self.on_lost is not None:
            self.on_lost(why)

    def _run(self):
        # Each wait, and each renewal in flight, ends by the deadline: a daemon that stops
        # answering cannot carry the holder past it (the renewal's timeout is what is left).
        while True:
            left = self._deadline - time.monotonic()
            if left <= 0:
                self._lose("deadline")
                return
            if self._stop.wait(min(self.interval, left)):
                return
            sent = time.monotonic()
            left = self._deadline - sent
            if left <= 0:
                continue
            try:
                self.lease = self.client.renew(self.lease, timeout=max(0.01, min(self.client.timeout, left)))
                self.renewals += 1
                self._deadline = sent + self.ttl
            except LeaseLost as error:
                self._lose(error.why)
                return
            except ApiError as error:
                self.errors.append(str(error))
