"""Drives clients/python/reaper_lease.py against a running daemon (python-client.test.ts):
acquire, renew with the lease token, a heartbeat that holds the lease past several ttls,
loss on expiry, release, and a renewal after release. Prints one JSON object of what it saw."""
import json
import os
import sys
import time

sys.path.insert(0, os.path.join(os.path.dirname(__file__), "..", "..", "..", "clients", "python"))
from reaper_lease import ApiError, Heartbeat, LeaseClient, LeaseLost  # noqa: E402

url, token = sys.argv[1], sys.argv[2]
client = LeaseClient(url, token=token)
seen = {}

lease = client.acquire("session:py-1", ttl="1s", holder="python-test")
seen["acquired"] = {"key": lease["key"], "holder": lease["holder"], "generation": lease["generation"], "hasToken": bool(lease.token)}
renewed = client.renew(lease)
seen["renewed"] = {"generation": renewed["generation"], "sameId": renewed.id == lease.id, "later": renewed["expiresAt"] >= lease["expiresAt"]}

# Someone else's token is refused: not-holder.
try:
    client.renew(type(lease)({**lease, "token": "not-the-token"}))
    seen["foreignToken"] = "accepted"
except LeaseLost as error:
    seen["foreignToken"] = {"status": error.status, "why": error.why}

# A heartbeat every 0.25 s holds a 1 s lease through 2.5 s: several ttls.
losses = []
with Heartbeat(client, renewed, interval=0.25, on_lost=losses.append) as beat:
    time.sleep(2.5)
    seen["heartbeat"] = {"lost": beat.lost.is_set(), "renewals": beat.renewals, "errors": beat.errors}
    held = beat.lease
now = client.get(held.id)
seen["afterHeartbeat"] = {"active": now["releasedAt"] is None, "renewedSinceAcquire": now["renewedAt"] > lease["acquiredAt"]}

# Stopped, the lease runs out: the next renewal is lost (expired), and a heartbeat started now says so.
time.sleep(1.6)
try:
    client.renew(held)
    seen["renewAfterExpiry"] = "renewed"
except LeaseLost as error:
    seen["renewAfterExpiry"] = {"status": error.status, "why": error.why}
late = Heartbeat(client, held, interval=0.05, on_lost=losses.append).start()
late.lost.wait(5)
late.stop()
seen["lateHeartbeat"] = {"lost": late.lost.is_set(), "why": late.why, "onLost": losses}

# Acquire again, release with the token, and a renewal after release is lost (released).
again = client.acquire("session:py-1", ttl="30s")
client.release(again)
try:
    client.renew(again)
    seen["renewAfterRelease"] = "renewed"
except LeaseLost as error:
    seen["renewAfterRelease"] = {"status": error.status, "why": error.why}
seen["listed"] = sorted(l["key"] for l in client.list(key="session:py-1", include_inactive=True))

# A daemon that stops answering (SIGSTOP, a hung store behind it): the renewal in flight must not
# carry the holder past its deadline. A server that accepts and never answers; a 1 s lease with the
# client's default 10 s timeout is lost ("deadline") about a ttl after its last confirmed renewal.
import socket  # noqa: E402
import threading  # noqa: E402

silent = socket.socket()
silent.bind(("127.0.0.1", 0))
silent.listen(8)
accepted = []
threading.Thread(target=lambda: [accepted.append(silent.accept()) for _ in range(8)], daemon=True).start()
hung = LeaseClient(f"http://127.0.0.1:{silent.getsockname()[1]}", token=token)
stalled = Heartbeat(hung, type(lease)({**lease, "ttlSeconds": 1}), interval=0.3).start()
started = time.monotonic()
stalled.lost.wait(5)
seen["hungDaemon"] = {"lost": stalled.lost.is_set(), "why": stalled.why, "withinTtlAndABit": time.monotonic() - started < 1.6}
stalled.stop()
silent.close()

try:
    LeaseClient(url, token="wrong-token").list()
    seen["wrongApiToken"] = "accepted"
except ApiError as error:
    seen["wrongApiToken"] = {"status": error.status}

print(json.dumps(seen))
