// ClearToken: the Clear token that clear-rotator keeps in AWS Secrets Manager, for Java 11+ with
// the AWS SDK for Java v2 (software.amazon.awssdk:secretsmanager) and Jackson
// (com.fasterxml.jackson.core:jackson-databind), both of which the SDK's users usually have.
//
// Compiled as written and run by the project's tests (examples/examples_test.go, TestJavaRecipe*)
// against moto, the Clear emulator and the real rotator, with test-only stand-ins for the SDK
// classes it imports (see README.md). It follows the same rule as the Go package cleartoken and
// the Python recipe:
//
//  - read AWSCURRENT (ask for the stage explicitly) and cache the token for a short TTL;
//  - on a 401 from Clear, re-read; while AWSCURRENT still holds the refused token (Clear revokes it
//    before the rotator has stored its successor), re-read with bounded, jittered exponential
//    backoff (about 10 s in all; a re-read that fails is tried again within it), then retry the
//    request once with the new token;
//  - one thread waits; the others refused at the same moment find the newer token cached;
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
    private String token;     // guarded by this; null also after Clear refused it and no newer one came
    private Instant validTill; // guarded by this; null when the token never expires or it is not known
    private long readAtNanos; // guarded by this

    /** One token document: the token and its expiry (null: never, or not readable). */
    private static final class Doc {
        final String token;
        final Instant validTill;

        Doc(String token, Instant validTill) {
            this.token = token;
            this.validTill = validTill;
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
     * The cached token, re-read once the cache is older than the TTL. When that re-read fails, the
     * token read before is kept until its valid_till (a token that never expires: until Clear
     * refuses it), and the read is tried again after another TTL.
     */
    public synchronized String token() {
        long now = System.nanoTime();
        if (token == null || now - readAtNanos >= ttl.toNanos()) {
            try {
                Doc d = read();
                token = d.token;
                validTill = d.validTill;
            } catch (RuntimeException e) { // ClearTokenException, or the SDK's when Secrets Manager is down
                if (token == null || (validTill != null && !Instant.now().isBefore(validTill))) {
                    throw e;
                }
            }
            readAtNanos = now;
        }
        return token;
    }

    /** Clear refused {@code refused}: return a newer token, waiting (bounded) for the rotator to store it. */
    public synchronized String refused(String refused) throws InterruptedException {
        if (token != null && !token.equals(refused)) {
            return token; // another thread already waited for it
        }
        long deadline = System.nanoTime() + maxWait.toNanos();
        long backoffMillis = 100;
        while (true) {
            Doc fresh;
            try {
                fresh = read();
            } catch (RuntimeException e) { // ClearTokenException, or the SDK's: read again within the wait
                if (deadline - System.nanoTime() <= 0) {
                    throw e;
                }
                fresh = null;
            }
            if (fresh != null && !fresh.token.equals(refused)) {
                token = fresh.token;
                validTill = fresh.validTill;
                readAtNanos = System.nanoTime();
                return fresh.token;
            }
            long leftMillis = (deadline - System.nanoTime()) / 1_000_000;
            if (leftMillis <= 0) {
                token = null; // the next call re-reads
                throw new ClearTokenException(secretId, "no newer token: AWSCURRENT still holds the refused token");
            }
            long sleep = (long) (backoffMillis * ThreadLocalRandom.current().nextDouble(0.5, 1.0));
            Thread.sleep(Math.min(sleep, leftMillis));
            backoffMillis = Math.min(backoffMillis * 2, 2000);
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
        HttpResponse<T> resp = client.send(request.copy().setHeader(HEADER, tok).build(), handler);
        if (resp.statusCode() != 401) {
            return resp;
        }
        if (!replayable) {
            // Clear's 401 is returned, but the wait for the newer token runs in the background, so
            // that the next requests carry it instead of the refused one for the rest of the TTL.
            Thread wait = new Thread(() -> {
                try {
                    refused(tok);
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
            fresh = refused(tok);
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
