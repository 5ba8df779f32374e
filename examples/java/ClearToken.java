// ClearToken: the Clear token that clear-rotator keeps in AWS Secrets Manager, for Java 11+ with
// the AWS SDK for Java v2 (software.amazon.awssdk:secretsmanager) and Jackson
// (com.fasterxml.jackson.core:jackson-databind), both of which the SDK's users usually have.
//
// Compiled as written and run by the project's tests (examples/examples_test.go, TestJavaRecipe*)
// against moto, the Clear emulator and the real rotator, with test-only stand-ins for the SDK
// classes it imports (see README.md). It follows the core of the Go package cleartoken's rule, as
// the Python recipe does (docs/consumers.md says what they leave out):
//
//  - read AWSCURRENT (ask for the stage explicitly) and cache the token for a short TTL;
//  - on a 401 from Clear, re-read; while AWSCURRENT still holds the refused token (Clear revokes it
//    before the rotator has stored its successor), re-read with bounded, jittered exponential
//    backoff (about 10 s in all; a re-read that fails is tried again within it), then retry the
//    request once with the new token;
//  - one thread reads, or waits for the newer token, at a time, without holding a lock others need:
//    threads refused meanwhile, and calls made meanwhile, wait for its result; once a whole wait
//    has found the refused token still in AWSCURRENT twice for the same call (method and path, an
//    id in the path standing for any id: Clear refuses it for a reason of its own), a later
//    refusal of it for that call holds only that call, while a refusal of any other call, which
//    may be the rotation, holds every call (one wait is no proof: a late store outlasts it too);
//  - when a re-read fails (Secrets Manager down, AWSCURRENT holding no token document), keep the
//    token read before until its valid_till, unless Clear refused it, and try again once per TTL;
//  - never retry a request whose body cannot be sent twice (one of unknown length, by default);
//  - send the token only where the request was made: a client that follows redirects is refused,
//    since java.net.http sends every header of the request to the host a redirect names;
//  - never log a token or put one, or any part of the secret, in an exception.
//
// Usage:
//
//   ClearToken source = new ClearToken(SecretsManagerClient.create(), "clear/erp/token");
//   HttpResponse<String> resp = source.send(HttpClient.newHttpClient(),
//       HttpRequest.newBuilder(URI.create("https://api.clear.in/...")), HttpResponse.BodyHandlers.ofString());
package example.clear;

import com.fasterxml.jackson.databind.JsonNode;
import com.fasterxml.jackson.databind.ObjectMapper;
import java.io.IOException;
import java.net.http.HttpClient;
import java.net.http.HttpRequest;
import java.net.http.HttpResponse;
import java.time.Duration;
import java.time.Instant;
import java.time.OffsetDateTime;
import java.time.format.DateTimeParseException;
import java.util.ArrayList;
import java.util.List;
import java.util.Objects;
import java.util.concurrent.CountDownLatch;
import java.util.concurrent.ThreadLocalRandom;
import software.amazon.awssdk.services.secretsmanager.SecretsManagerClient;
import software.amazon.awssdk.services.secretsmanager.model.GetSecretValueRequest;
import software.amazon.awssdk.services.secretsmanager.model.GetSecretValueResponse;
import software.amazon.awssdk.services.secretsmanager.model.ResourceNotFoundException;

public final class ClearToken {
    public static final String HEADER = "x-cleartax-auth-token";

    /** The token secret cannot give a token. The message names the secret, never its value. */
    public static final class ClearTokenException extends RuntimeException {
        public ClearTokenException(String secretId, String kind) {
            super("clear token secret \"" + secretId + "\": " + kind);
        }
    }

    private static final ObjectMapper JSON = new ObjectMapper();

    private final SecretsManagerClient sm;
    private final String secretId;
    private final Duration ttl;
    private final Duration maxWait;
    // Guarded by this, which is never held across a read or a sleep.
    private String token;
    private Instant validTill; // null when the token never expires or it is not known
    private boolean cached;    // false: not read yet, or refused (the next call re-reads)
    private long readAtNanos;
    private Instant readAt;
    private Flight flight;     // the read or wait under way, if any
    private String outlived;   // a refused token a whole wait found still in AWSCURRENT
    // The calls Clear refused it for, with the waits that ended with it still current; last used last.
    private final List<Outlived> outlivedCalls = new ArrayList<>();

    /** The calls remembered for one refused token, the least recently used dropped first. */
    private static final int MAX_CALLS = 64;

    /** A call refused with the outlived token, and the whole waits that ended with it current. */
    private static final class Outlived {
        final String call;
        int waits;

        Outlived(String call) {
            this.call = call;
        }
    }

    /** One token document: the token and its expiry (null: never, or not readable). */
    private static final class Doc {
        final String token;
        final Instant validTill;

        Doc(String token, Instant validTill) {
            this.token = token;
            this.validTill = validTill;
        }
    }

    /**
     * One read of the secret, or one wait for a token newer than refused, that every thread asking
     * meanwhile waits on: a missing secret or a rotation costs one read, not one per thread.
     */
    private static final class Flight {
        final String refused; // null for a plain read
        // holds: calls made during the wait join it; not while every call refused is one a whole
        // wait already found Clear refuses with the token (outlivedCalls).
        boolean holds;
        final List<String> calls = new ArrayList<>(); // the calls refused during the wait
        final CountDownLatch done = new CountDownLatch(1);
        Doc result;            // set before done counts down
        RuntimeException error;

        Flight(String refused) {
            this.refused = refused;
        }
    }

    public ClearToken(SecretsManagerClient sm, String secretId) {
        this(sm, secretId, Duration.ofMinutes(1), Duration.ofSeconds(10));
    }

    public ClearToken(SecretsManagerClient sm, String secretId, Duration ttl, Duration maxWait) {
        this.sm = sm;
        this.secretId = secretId;
        this.ttl = ttl;
        this.maxWait = maxWait;
    }

    private Doc read() {
        GetSecretValueResponse out;
        try {
            out = sm.getSecretValue(GetSecretValueRequest.builder()
                    .secretId(secretId).versionStage("AWSCURRENT").build());
        } catch (ResourceNotFoundException e) {
            throw new ClearTokenException(secretId, "not found");
        }
        if (out.secretString() == null) {
            throw new ClearTokenException(secretId, "binary secret: the token document must be a SecretString");
        }
        JsonNode doc;
        try {
            doc = JSON.readTree(out.secretString());
        } catch (IOException e) {
            // Jackson's message quotes the input: say nothing about it.
            throw new ClearTokenException(secretId, "malformed token document: not valid JSON");
        }
        JsonNode tok = doc == null ? null : doc.get("access_token");
        if (tok == null || tok.isNull() || (tok.isTextual() && tok.asText().isEmpty())) {
            throw new ClearTokenException(secretId, "no token yet");
        }
        if (!tok.isTextual() || !tok.asText().chars().allMatch(c -> c >= 0x21 && c <= 0x7e)) {
            throw new ClearTokenException(secretId, "malformed token document: access_token is not a header-safe string");
        }
        return new Doc(tok.asText(), validTill(doc));
    }

    private static Instant validTill(JsonNode doc) {
        JsonNode vt = doc.get("valid_till");
        if (vt == null || !vt.isTextual()) {
            return null;
        }
        try {
            return OffsetDateTime.parse(vt.asText()).toInstant();
        } catch (DateTimeParseException e) {
            return null;
        }
    }

    /**
     * The cached token, re-read once the cache is older than the TTL or past its valid_till. When
     * that re-read fails, the token read before is kept until its valid_till (a token that never
     * expires: until Clear refuses it), and the read is tried again after another TTL.
     */
    public String token() {
        return get(null, null);
    }

    /**
     * Clear refused {@code refused}: return a newer token, waiting (bounded) for the rotator to
     * store it. A read that fails during the wait is tried again; its exception is thrown when it
     * is the wait's last read. Every refusal is taken for one unknown call; see the overload.
     */
    public String refused(String refused) throws InterruptedException {
        return refused(refused, null);
    }

    /**
     * refused for a refusal of call, "METHOD /path" (null: a call of unknown route). Once a whole
     * wait has found the token still in AWSCURRENT after Clear refused call, a later refusal of the
     * same call holds no other caller; a refusal of another call may be the rotation, and does.
     */
    public String refused(String refused, String call) throws InterruptedException {
        String t = get(refused, call);
        if (Thread.interrupted()) { // the wait was cut short by an interrupt, which get keeps
            throw new InterruptedException();
        }
        return t;
    }

    private String get(String refused, String call) {
        while (true) {
            Flight f;
            boolean mine = false;
            synchronized (this) {
                if (usable(refused)) {
                    return token;
                }
                f = flight;
                if (f == null) {
                    f = new Flight(refused);
                    flight = f;
                    mine = true;
                }
                if (refused != null && refused.equals(f.refused)) {
                    refusal(f, call);
                }
            }
            if (mine) {
                fly(f);
            } else {
                awaitDone(f);
            }
            // A failed flight answers those who asked for the same (a missing secret costs one
            // read), but a plain caller that joined a refusal's wait goes round: the token in
            // AWSCURRENT, or the one read before, may still serve its call.
            if (f.error != null && (refused != null || f.refused == null)) {
                throw f.error;
            }
            if (f.error == null && (refused == null || !f.result.token.equals(refused))) {
                return f.result.token;
            }
        }
    }

    /**
     * Records that Clear refused call with f's token; this is held. A call a whole wait already
     * found refused with it holds only itself; any other makes f hold every call.
     */
    private void refusal(Flight f, String call) {
        if (!known(f.refused, call)) {
            f.holds = true;
        }
        if (!has(f.calls, call) && f.calls.size() < MAX_CALLS) {
            f.calls.add(call);
        }
    }

    /**
     * Whether two whole waits found refused still current after Clear refused call with it (one,
     * for a call of unknown route); this is held.
     */
    private boolean known(String refused, String call) {
        if (!refused.equals(outlived)) {
            return false;
        }
        int i = indexOf(call);
        if (i < 0 || (call != null && outlivedCalls.get(i).waits < 2)) {
            return false;
        }
        outlivedCalls.add(outlivedCalls.remove(i));
        return true;
    }

    private int indexOf(String call) {
        for (int i = 0; i < outlivedCalls.size(); i++) {
            if (sameCall(outlivedCalls.get(i).call, call)) {
                return i;
            }
        }
        return -1;
    }

    private static boolean has(List<String> calls, String call) {
        return calls.stream().anyMatch(c -> sameCall(c, call));
    }

    /**
     * Whether two calls, "METHOD /path" or null for a call of unknown route, are one route: the
     * same method, and the same path but that an id stands for any id (cleartoken's rule).
     */
    static boolean sameCall(String a, String b) {
        if (a == null || b == null) {
            return Objects.equals(a, b);
        }
        String[] sa = a.split("/", -1);
        String[] sb = b.split("/", -1);
        if (sa.length != sb.length) {
            return false;
        }
        for (int i = 0; i < sa.length; i++) {
            if (!sa[i].equals(sb[i]) && !(i > 0 && isId(sa[i]) && isId(sb[i]))) {
                return false;
            }
        }
        return true;
    }

    /** An id: all digits, or 8 characters or more with a digit (a GSTIN, an IRN, a UUID). */
    private static boolean isId(String seg) {
        long digits = seg.chars().filter(Character::isDigit).count();
        return digits > 0 && (digits == seg.length() || seg.length() >= 8);
    }

    /** Whether the cache answers; this is held. */
    private boolean usable(String refused) {
        if (!cached) {
            return false;
        }
        Flight f = flight;
        if (f != null && f.refused != null && f.refused.equals(token) && f.holds) {
            return false; // a wait for its successor is under way: join it rather than be refused too
        }
        if (refused != null) {
            return !token.equals(refused);
        }
        if (System.nanoTime() - readAtNanos >= ttl.toNanos()) {
            return false;
        }
        // Past its valid_till it is re-read, unless it was already expired when read.
        return validTill == null || Instant.now().isBefore(validTill) || !readAt.isBefore(validTill);
    }

    private void fly(Flight f) {
        Doc result = null;
        RuntimeException error = null;
        try {
            try {
                result = f.refused == null ? read() : waitNewer(f);
            } catch (RuntimeException e) { // ClearTokenException, or the SDK's when Secrets Manager is down
                error = e;
            }
            synchronized (this) {
                if (error == null) {
                    token = result.token;
                    validTill = result.validTill;
                    cached = true;
                    readAtNanos = System.nanoTime();
                    readAt = Instant.now();
                } else if (f.refused == null && cached && (validTill == null || Instant.now().isBefore(validTill))) {
                    readAtNanos = System.nanoTime(); // the token read before, tried again after a TTL
                    result = new Doc(token, validTill);
                    error = null;
                }
                f.result = result;
                f.error = error;
            }
        } finally {
            synchronized (this) {
                if (f.result == null && f.error == null) {
                    f.error = new ClearTokenException(secretId, "read failed");
                }
                flight = null;
            }
            f.done.countDown();
        }
    }

    private Doc waitNewer(Flight f) {
        String refused = f.refused;
        long deadline = System.nanoTime() + maxWait.toNanos();
        long backoffMillis = 100;
        while (true) {
            Doc fresh = null;
            RuntimeException error = null;
            try {
                fresh = read();
            } catch (RuntimeException e) { // ClearTokenException, or the SDK's: read again within the wait
                error = e;
            }
            if (fresh != null && !fresh.token.equals(refused)) {
                return fresh;
            }
            long leftNanos = deadline - System.nanoTime();
            if (leftNanos <= 0) {
                // Keep the refused token out of the cache's way, whether the last read found it
                // again or failed: the next call re-reads. Only a last read that found it shows
                // that Clear refused these calls for reasons of their own.
                synchronized (this) {
                    cached = false;
                    if (error == null) {
                        if (!refused.equals(outlived)) {
                            outlived = refused;
                            outlivedCalls.clear();
                        }
                        for (String c : f.calls) {
                            int i = indexOf(c);
                            Outlived o = i >= 0 ? outlivedCalls.remove(i) : new Outlived(c);
                            o.waits++;
                            outlivedCalls.add(o);
                        }
                        while (outlivedCalls.size() > MAX_CALLS) {
                            outlivedCalls.remove(0);
                        }
                    }
                }
                if (error != null) {
                    throw error;
                }
                throw new ClearTokenException(secretId, "no newer token: AWSCURRENT still holds the refused token");
            }
            long sleep = (long) (backoffMillis * ThreadLocalRandom.current().nextDouble(0.5, 1.0));
            try {
                Thread.sleep(Math.max(1, Math.min(sleep, (leftNanos + 999_999) / 1_000_000)));
            } catch (InterruptedException e) {
                Thread.currentThread().interrupt();
                throw new ClearTokenException(secretId, "interrupted while waiting for a newer token");
            }
            backoffMillis = Math.min(backoffMillis * 2, 2000);
        }
    }

    /** Waits for f to end; an interrupt does not cut the wait short, and is kept for the caller. */
    private static void awaitDone(Flight f) {
        boolean interrupted = false;
        while (true) {
            try {
                f.done.await();
                break;
            } catch (InterruptedException e) {
                interrupted = true;
            }
        }
        if (interrupted) {
            Thread.currentThread().interrupt();
        }
    }

    /**
     * Sends a request with the token; on a 401 waits for a newer token and sends it once more, if
     * replayable says the body can be sent twice. The 401 is returned as it is when the body
     * cannot be sent twice, when no newer token came within the wait, or when the secret could not
     * be read (the read's exception is not thrown: the caller gets Clear's answer). The client must
     * not follow redirects (HttpClient's default, Redirect.NEVER): java.net.http follows one with
     * every header of the request, so the token would go to whatever host the redirect names.
     */
    public <T> HttpResponse<T> send(HttpClient client, HttpRequest.Builder request,
            HttpResponse.BodyHandler<T> handler, boolean replayable) throws IOException, InterruptedException {
        if (client.followRedirects() != HttpClient.Redirect.NEVER) {
            throw new IllegalArgumentException("ClearToken.send needs an HttpClient that does not follow redirects:"
                    + " it would send the token to any host a redirect names");
        }
        String tok = token();
        HttpRequest sent = request.copy().setHeader(HEADER, tok).build();
        HttpResponse<T> resp = client.send(sent, handler);
        String call = sent.method() + " " + sent.uri().getRawPath();
        if (resp.statusCode() != 401) {
            return resp;
        }
        if (!replayable) {
            // Clear's 401 is returned, but the wait for the newer token runs in the background, so
            // that the next requests carry it instead of the refused one for the rest of the TTL.
            Thread wait = new Thread(() -> {
                try {
                    refused(tok, call);
                } catch (RuntimeException | InterruptedException e) {
                    // the next request re-reads, or waits again
                }
            });
            wait.setDaemon(true);
            wait.start();
            return resp;
        }
        String fresh;
        try {
            fresh = refused(tok, call);
        } catch (RuntimeException e) { // ClearTokenException, or the SDK's: Clear's 401 is the answer
            return resp;
        }
        return client.send(request.copy().setHeader(HEADER, fresh).build(), handler);
    }

    /**
     * send with the body's replayability judged from its publisher (see {@link #replayable}): a
     * body of unknown length, such as BodyPublishers.ofInputStream, is not sent again, since a
     * second subscription may read an exhausted stream and send an empty body.
     */
    public <T> HttpResponse<T> send(HttpClient client, HttpRequest.Builder request,
            HttpResponse.BodyHandler<T> handler) throws IOException, InterruptedException {
        return send(client, request, handler, replayable(request.copy().build()));
    }

    /**
     * Whether a request's body can be sent twice: no body, or a body of known length
     * (BodyPublishers ofString, ofByteArray, ofFile, noBody). A body of unknown length
     * (ofInputStream, ofByteArrays, fromPublisher) may be readable once only. fromPublisher with a
     * length is taken as replayable: pass replayable = false to the four-argument send for one
     * that is not.
     */
    public static boolean replayable(HttpRequest request) {
        return request.bodyPublisher().map(p -> p.contentLength() >= 0).orElse(true);
    }
}
