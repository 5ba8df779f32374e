"""Use the Clear token that clear-rotator keeps in AWS Secrets Manager, from Python.

The core of the Go package cleartoken's rule (docs/consumers.md says what it leaves out):

* read AWSCURRENT (always ask for the stage explicitly) and cache the token for a short TTL;
* when Clear answers 401, re-read; while AWSCURRENT still holds the refused token (Clear revokes a
  token before the rotator has stored its successor), re-read with bounded, jittered exponential
  backoff (about 10 s in all; a re-read that fails is tried again within it), then retry the
  request once with the new token;
* one thread reads, or waits for the newer token, at a time, without holding a lock others need:
  threads refused meanwhile, and calls made meanwhile, wait for its result; once a whole wait has
  found the refused token still in AWSCURRENT twice for the same call (method and path, an id in
  the path standing for any id: Clear refuses it for a reason of its own), a later refusal of it
  for that call holds only that call, while a refusal of any other call, which may be the
  rotation, holds every call (one wait is no proof: a rotator that stores late outlasts it too);
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


def _is_id(seg):
    """Whether a path segment is an id: all digits, or 8 bytes or more with a digit (a GSTIN, an
    IRN, a UUID). A short name with a digit (v2, GSTR3B) is a name."""
    digits = sum(c.isdigit() for c in seg)
    return digits > 0 and (digits == len(seg) or len(seg) >= 8)


def _same_call(a, b):
    """Whether calls a and b, (method, path) or None for a call of unknown route, are one route:
    the same method, and the same path but that an id stands for any id (cleartoken's rule)."""
    if a is None or b is None:
        return a is b
    if a[0] != b[0]:
        return False
    sa, sb = a[1].split("/"), b[1].split("/")
    return len(sa) == len(sb) and all(x == y or (_is_id(x) and _is_id(y)) for x, y in zip(sa, sb))


def _has(calls, call):
    return any(_same_call(c, call) for c in calls)


_MAX_CALLS = 64  # calls remembered for one refused token, the least recently used dropped first


def _index(entries, call):
    """The index of call in entries ([call, waits] pairs), or -1."""
    return next((i for i, e in enumerate(entries) if _same_call(e[0], call)), -1)


def _same_origin(a, b):
    oa = _origin(a)
    return oa is not None and oa == _origin(b)


class ClearTokenError(Exception):
    """The token secret cannot give a token. The message names the secret, never its value."""

    def __init__(self, secret_id, kind, detail=""):
        self.secret_id = secret_id
        self.kind = kind
        super().__init__("clear token secret %r: %s%s" % (secret_id, kind, ": " + detail if detail else ""))


class _Flight:
    """One read of the secret, or one wait for a token newer than `refused`, that every thread
    asking meanwhile waits on: a missing secret or a rotation costs one read, not one per thread."""

    def __init__(self, refused):
        self.refused = refused  # None for a plain read
        # holds: calls made during the wait join it; not while every call refused is one a whole
        # wait already found Clear refuses with the token (the source's outlived calls).
        self.holds = False
        self.calls = []  # the calls refused during the wait
        self.done = threading.Event()
        self.result = None  # (token, version, valid_till)
        self.error = None


class ClearTokenSource:
    """A cached token from one secret's AWSCURRENT version; safe to share between threads.

    No thread holds the lock while it reads or sleeps: one read (or one wait for a newer token) is
    under way at a time, and the other threads that need it wait for its result, as cleartoken's
    callers do; the others go on with the cached token.
    """

    def __init__(self, secret_id, client, ttl=60.0, max_wait=10.0):
        self.secret_id = secret_id
        self._sm = client
        self._ttl = ttl
        self._max_wait = max_wait
        self._lock = threading.Lock()  # guards the fields below; never held across a read or a sleep
        self._token = None
        self._version = None
        self._valid_till = None
        self._read_at = None  # monotonic; None: not read, or refused (the next call re-reads)
        self._read_wall = None  # when it was read, to compare with valid_till
        self._flight = None
        self._outlived = None  # a refused token a whole wait found still in AWSCURRENT
        self._outlived_calls = []  # [call, waits that ended with it still current], last used last

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
        """The cached token, re-read once the cache is older than the TTL or past its valid_till.

        When that re-read fails, the token read before is kept until its valid_till (a token that
        never expires: until Clear refuses it), and the read is tried again after another TTL.
        """
        return self._get(None)

    def refused(self, token, call=None):
        """Clear refused token: return a newer one, waiting (bounded) for the rotator to store it.

        A read that fails during the wait is tried again like one that found the refused token
        (the rotator may store the newer one a moment later); its error is raised when it is the
        wait's last read. call, (method, path), is the call Clear refused; None stands for one
        unknown call.
        """
        return self._get(token, call)

    def _get(self, refused, call=None):
        while True:
            with self._lock:
                if self._usable(refused):
                    return self._token
                f, mine = self._flight, False
                if f is None:
                    f, mine = _Flight(refused), True
                    self._flight = f
                if refused is not None and f.refused == refused:
                    self._refusal(f, call)
            if mine:
                self._fly(f)
            else:
                f.done.wait()
            # A failed flight answers those who asked for the same (a missing secret costs one
            # read), but a plain caller that joined a refusal's wait goes round: the token in
            # AWSCURRENT, or the one read before, may still serve its call.
            if f.error is not None and (refused is not None or f.refused is None):
                raise f.error
            if f.error is None and (refused is None or f.result[0] != refused):
                return f.result[0]

    def _refusal(self, f, call):
        """Record that Clear refused call with f's token; the lock is held. A call Clear refuses
        for a reason of its own (_known) holds only itself; any other makes f hold every call."""
        if not self._known(f.refused, call):
            f.holds = True
        if not _has(f.calls, call) and len(f.calls) < _MAX_CALLS:
            f.calls.append(call)

    def _known(self, refused, call):
        """Whether two whole waits found refused still current after Clear refused call with it
        (one, for a call of unknown route); the lock is held."""
        i = _index(self._outlived_calls, call) if refused == self._outlived else -1
        if i < 0 or (call is not None and self._outlived_calls[i][1] < 2):
            return False
        self._outlived_calls.append(self._outlived_calls.pop(i))
        return True

    def _usable(self, refused):
        """Whether the cache answers; the lock is held."""
        if self._read_at is None:
            return False
        f = self._flight
        if f is not None and f.refused is not None and f.refused == self._token and f.holds:
            return False  # a wait for its successor is under way: join it rather than be refused too
        if refused is not None:
            return self._token != refused
        if time.monotonic() - self._read_at >= self._ttl:
            return False
        # Past its valid_till it is re-read, unless it was already expired when read.
        vt = self._valid_till
        return vt is None or datetime.now(timezone.utc) < vt or self._read_wall >= vt

    def _fly(self, f):
        result = error = None
        try:
            result = self._read() if f.refused is None else self._wait_newer(f)
        except ClearTokenError as e:
            error = e
        with self._lock:
            if error is None:
                self._token, self._version, self._valid_till = result
                self._read_at, self._read_wall = time.monotonic(), datetime.now(timezone.utc)
            elif f.refused is None and self._read_at is not None and (
                self._valid_till is None or datetime.now(timezone.utc) < self._valid_till
            ):
                log.warning("%s; using the token read before (version %s) until its valid_till", error, self._version)
                self._read_at = time.monotonic()
                result, error = (self._token, self._version, self._valid_till), None
            self._flight = None
            f.result, f.error = result, error
        f.done.set()

    def _wait_newer(self, f):
        refused = f.refused
        deadline = time.monotonic() + self._max_wait
        backoff = 0.1
        while True:
            error = None
            try:
                new = self._read()
            except ClearTokenError as e:
                error, new = e, None
            if new is not None and new[0] != refused:
                return new
            left = deadline - time.monotonic()
            if left <= 0:
                # Keep the refused token out of the cache's way, whether the last read found it
                # again or failed: the next call re-reads. Only a last read that found it shows
                # that Clear refused these calls for reasons of their own.
                with self._lock:
                    self._read_at = None
                    if error is None:
                        if self._outlived != refused:
                            self._outlived, self._outlived_calls = refused, []
                        for c in f.calls:
                            i = _index(self._outlived_calls, c)
                            entry = self._outlived_calls.pop(i) if i >= 0 else [c, 0]
                            entry[1] += 1
                            self._outlived_calls.append(entry)
                        self._outlived_calls = self._outlived_calls[-_MAX_CALLS:]
                if error is not None:
                    raise error
                raise ClearTokenError(self.secret_id, "no newer token", "AWSCURRENT still holds the refused token")
            if error is not None:
                log.warning("%s; reading again while waiting for the newer token", error)
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

    def _refresh(self, token, call):
        try:
            self.source.refused(token, call)
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
        call = (req.method, urlsplit(req.url).path)
        if req.body is not None and not isinstance(req.body, (bytes, str)):
            # A streamed body cannot be sent again: return Clear's 401, but wait for the newer
            # token in the background so that the next requests carry it.
            threading.Thread(target=self._refresh, args=(req.headers[HEADER], call), daemon=True).start()
            return resp
        try:
            token = self.source.refused(req.headers[HEADER], call)
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
        # requests follows a redirect of the retry with a copy of the first request, which carries
        # the refused token (possibly still good for other calls): give it the newer token, or
        # none when the redirect leaves the origin.
        if new.is_redirect and not _same_origin(retry.url, urljoin(new.url, new.headers["location"])):
            del req.headers[HEADER]
        else:
            req.headers[HEADER] = token
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
