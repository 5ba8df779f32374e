"""Use the Clear token that clear-rotator keeps in AWS Secrets Manager, from Python.

The same rule as the Go package cleartoken:

* read AWSCURRENT (always ask for the stage explicitly) and cache the token for a short TTL;
* when Clear answers 401, re-read; while AWSCURRENT still holds the refused token (Clear revokes a
  token before the rotator has stored its successor), re-read with bounded, jittered exponential
  backoff (about 10 s in all; a re-read that fails is tried again within it), then retry the
  request once with the new token;
* one thread waits for the newer token; the others refused at the same moment find it cached;
* when a re-read fails (Secrets Manager down, AWSCURRENT holding no token document), keep using the
  token read before until its valid_till, unless Clear refused it, and try again once per TTL;
* never retry a request whose body is a stream (it cannot be sent twice);
* send the token only to the origin (scheme, host, port) the request was made to: requests follows
  a redirect with every header but Authorization, so a redirect to another origin, and every hop
  after it, goes without the token;
* never log a token or put one, or any part of the secret, in an exception.

Usage::

    import boto3, requests
    from clear_token import ClearTokenSource, ClearAuth

    source = ClearTokenSource("clear/erp/token", boto3.client("secretsmanager"))
    session = requests.Session()
    session.auth = ClearAuth(source)
    session.get("https://api.clear.in/...")

Run as a script it is the ERP load the project's tests use: it calls a URL from several threads
for a while and prints {"calls": N, "failed": M}.
"""

import json
import logging
import random
import threading
import time
from datetime import datetime, timezone
from urllib.parse import urljoin, urlsplit

import requests

HEADER = "x-cleartax-auth-token"

log = logging.getLogger(__name__)


def _valid_till(doc):
    """The token's expiry as an aware datetime; None when it never expires or cannot be read."""
    vt = doc.get("valid_till")
    if not isinstance(vt, str):
        return None
    try:
        at = datetime.fromisoformat(vt.replace("Z", "+00:00"))
    except ValueError:
        return None
    return at if at.tzinfo is not None else None


def _origin(url):
    """Scheme, host name and port, with the scheme's default port; None when url has none."""
    try:
        u = urlsplit(url)
        scheme = u.scheme.lower()
        return scheme, u.hostname or "", u.port or {"http": 80, "https": 443}.get(scheme)
    except ValueError:  # a port that is not a number
        return None


def _same_origin(a, b):
    oa = _origin(a)
    return oa is not None and oa == _origin(b)


class ClearTokenError(Exception):
    """The token secret cannot give a token. The message names the secret, never its value."""

    def __init__(self, secret_id, kind, detail=""):
        self.secret_id = secret_id
        self.kind = kind
        super().__init__("clear token secret %r: %s%s" % (secret_id, kind, ": " + detail if detail else ""))


class ClearTokenSource:
    """A cached token from one secret's AWSCURRENT version; safe to share between threads."""

    def __init__(self, secret_id, client, ttl=60.0, max_wait=10.0):
        self.secret_id = secret_id
        self._sm = client
        self._ttl = ttl
        self._max_wait = max_wait
        self._lock = threading.Lock()  # one read (or one wait for a newer token) at a time
        self._token = None  # None also after Clear refused it and no newer one came
        self._version = None
        self._valid_till = None
        self._read_at = None

    def _read(self):
        try:
            out = self._sm.get_secret_value(SecretId=self.secret_id, VersionStage="AWSCURRENT")
        except self._sm.exceptions.ResourceNotFoundException:
            raise ClearTokenError(self.secret_id, "not found") from None
        except Exception as e:  # botocore's messages name the call and code, not the value
            raise ClearTokenError(self.secret_id, "read failed", type(e).__name__) from None
        if "SecretString" not in out:
            raise ClearTokenError(self.secret_id, "binary secret", "the token document must be a SecretString")
        try:
            doc = json.loads(out["SecretString"])
        except ValueError:
            # The decoder's message can quote the value: say nothing about it.
            raise ClearTokenError(self.secret_id, "malformed token document", "not valid JSON") from None
        token = doc.get("access_token") if isinstance(doc, dict) else None
        if token is None or token == "":
            raise ClearTokenError(self.secret_id, "no token yet", "the secret holds no access_token")
        if not isinstance(token, str) or not all(0x21 <= ord(c) <= 0x7E for c in token):
            raise ClearTokenError(self.secret_id, "malformed token document", "access_token is not a header-safe string")
        return token, out.get("VersionId"), _valid_till(doc)

    def token(self):
        """The cached token, re-read once the cache is older than the TTL.

        When that re-read fails, the token read before is kept until its valid_till (a token that
        never expires: until Clear refuses it), and the read is tried again after another TTL.
        """
        with self._lock:
            now = time.monotonic()
            if self._token is None or now - self._read_at >= self._ttl:
                try:
                    self._token, self._version, self._valid_till = self._read()
                except ClearTokenError as e:
                    if self._token is None or (
                        self._valid_till is not None and datetime.now(timezone.utc) >= self._valid_till
                    ):
                        raise
                    log.warning("%s; using the token read before (version %s) until its valid_till", e, self._version)
                self._read_at = now
            return self._token

    def refused(self, token):
        """Clear refused token: return a newer one, waiting (bounded) for the rotator to store it.

        A read that fails during the wait is tried again like one that found the refused token
        (the rotator may store the newer one a moment later); its error is raised when it is the
        wait's last read.
        """
        with self._lock:
            if self._token is not None and self._token != token:
                return self._token  # another thread already waited for it
            deadline = time.monotonic() + self._max_wait
            backoff = 0.1
            while True:
                try:
                    new, version, valid_till = self._read()
                except ClearTokenError as e:
                    if deadline - time.monotonic() <= 0:
                        raise
                    log.warning("%s; reading again while waiting for the newer token", e)
                    new = token
                if new != token:
                    self._token, self._version, self._valid_till = new, version, valid_till
                    self._read_at = time.monotonic()
                    return new
                left = deadline - time.monotonic()
                if left <= 0:
                    self._token = None  # the next call re-reads
                    raise ClearTokenError(self.secret_id, "no newer token", "AWSCURRENT still holds the refused token")
                time.sleep(min(backoff * random.uniform(0.5, 1.0), left))
                backoff = min(backoff * 2, 2.0)


class ClearAuth(requests.auth.AuthBase):
    """A requests auth hook: sends the token, and on a 401 waits for a newer one and retries once."""

    def __init__(self, source):
        self.source = source

    def __call__(self, r):
        r.headers[HEADER] = self.source.token()
        r.register_hook("response", self._on_response)
        return r

    def _refresh(self, token):
        try:
            self.source.refused(token)
        except ClearTokenError:
            pass

    def _on_response(self, resp, **kwargs):
        req = resp.request
        if HEADER not in req.headers:
            return resp  # a hop after a redirect left the origin: no token was sent, none refused
        if resp.is_redirect and not _same_origin(req.url, urljoin(resp.url, resp.headers["location"])):
            # requests copies this request, headers and all, for the next hop; the token stays
            # here. Later hops are copies of that one, so they go without it too.
            del req.headers[HEADER]
            return resp
        if resp.status_code != 401 or getattr(req, "_clear_retried", False):
            return resp
        if req.body is not None and not isinstance(req.body, (bytes, str)):
            # A streamed body cannot be sent again: return Clear's 401, but wait for the newer
            # token in the background so that the next requests carry it.
            threading.Thread(target=self._refresh, args=(req.headers[HEADER],), daemon=True).start()
            return resp
        try:
            token = self.source.refused(req.headers[HEADER])
        except ClearTokenError:
            return resp
        resp.content  # drain the 401 so its connection can be reused
        resp.close()
        retry = req.copy()
        retry.headers[HEADER] = token
        retry._clear_retried = True
        new = resp.connection.send(retry, **kwargs)
        new.history.append(resp)
        new.request = retry
        return new


def _main():
    import argparse
    import sys

    import boto3

    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--secret-id", required=True)
    p.add_argument("--url", required=True)
    p.add_argument("--threads", type=int, default=4)
    p.add_argument("--seconds", type=float, default=20)
    p.add_argument("--interval", type=float, default=0.05)
    p.add_argument("--ttl", type=float, default=60.0, help="seconds a token is used before the secret is read again")
    p.add_argument("--post-stream", action="store_true", help="POST a streamed body (never retried)")
    args = p.parse_args()

    source = ClearTokenSource(args.secret_id, boto3.client("secretsmanager"), ttl=args.ttl)
    try:
        source.token()
    except ClearTokenError as e:
        print(e, file=sys.stderr)
        return 1
    counts = {"calls": 0, "failed": 0, "statuses": {}}
    lock = threading.Lock()
    end = time.monotonic() + args.seconds

    def worker():
        session = requests.Session()
        session.auth = ClearAuth(source)
        while True:  # at least one call each, however late the thread starts
            try:
                if args.post_stream:
                    status = session.post(args.url, data=iter([b'{"invoice":', b"1}"]), timeout=30).status_code
                else:
                    status = session.get(args.url, timeout=30).status_code
            except (requests.RequestException, ClearTokenError) as e:
                status = type(e).__name__
            with lock:
                counts["calls"] += 1
                counts["statuses"][str(status)] = counts["statuses"].get(str(status), 0) + 1
                if status != 200:
                    counts["failed"] += 1
            if time.monotonic() >= end:
                break
            time.sleep(args.interval)

    threads = [threading.Thread(target=worker) for _ in range(args.threads)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    print(json.dumps(counts))
    return 0


if __name__ == "__main__":
    raise SystemExit(_main())
