// WaitCheck: the Java recipe's waits against a Secrets Manager stand-in (a token that never
// changes, or reads that fail), as examples_test.go's pythonWaitDriver checks the Python recipe's.
// It prints one line per check that failed: as cleartoken, concurrent refusals share one wait; a
// refusal of a token whole waits found still current for the same call holds no other thread (one
// wait for a call of unknown route, two for a known route), and holds them when it is another
// call (the rotation) or after one wait only (a late store); a wait that ends in failed reads
// leaves the refused token unused.
package example.clear;

import java.time.Duration;
import java.util.ArrayList;
import java.util.List;
import java.util.concurrent.atomic.AtomicBoolean;
import software.amazon.awssdk.services.secretsmanager.SecretsManagerClient;
import software.amazon.awssdk.services.secretsmanager.model.GetSecretValueRequest;
import software.amazon.awssdk.services.secretsmanager.model.GetSecretValueResponse;
import software.amazon.awssdk.services.secretsmanager.model.SecretsManagerException;

public final class WaitCheck {
    private WaitCheck() {
    }

    /** A secret whose AWSCURRENT holds tok (T1 until set), or whose reads all fail while fail is set. */
    static final class FakeSM implements SecretsManagerClient {
        final AtomicBoolean fail = new AtomicBoolean();
        volatile String tok = "T1";

        @Override
        public GetSecretValueResponse getSecretValue(GetSecretValueRequest in) {
            if (fail.get()) {
                throw new SecretsManagerException("EndpointConnectionError");
            }
            return GetSecretValueResponse.builder().secretString("{\"access_token\":\"" + tok + "\",\"valid_till\":null}").build();
        }
    }

    static void refuse(ClearToken src) {
        refuse(src, null);
    }

    static void refuse(ClearToken src, String call) {
        try {
            src.refused("T1", call);
        } catch (RuntimeException | InterruptedException e) {
            // the wait found no newer token: expected
        }
    }

    /**
     * Whether a call made while T1 is refused for call second, after a whole wait for call first,
     * gets T2, which the rotator stores 0.3 s into that refusal.
     */
    static boolean heldUntilStored(String first, String second) throws InterruptedException {
        FakeSM sm = new FakeSM();
        ClearToken src = new ClearToken(sm, "s", Duration.ofMinutes(1), Duration.ofSeconds(1));
        src.token();
        refuse(src, first);
        src.token();
        Thread refused = new Thread(() -> refuse(src, second));
        refused.start();
        Thread.sleep(100);
        Thread store = new Thread(() -> {
            try {
                Thread.sleep(200);
            } catch (InterruptedException e) {
                return;
            }
            sm.tok = "T2";
        });
        store.start();
        boolean got = "T2".equals(src.token());
        refused.join();
        store.join();
        return got;
    }

    public static void main(String[] args) throws Exception {
        FakeSM sm = new FakeSM();
        ClearToken src = new ClearToken(sm, "s", Duration.ofMinutes(1), Duration.ofSeconds(1));
        src.token();
        long start = System.nanoTime();
        List<Thread> threads = new ArrayList<>();
        for (int i = 0; i < 5; i++) {
            Thread t = new Thread(() -> refuse(src));
            t.start();
            threads.add(t);
        }
        for (Thread t : threads) {
            t.join();
        }
        double took = (System.nanoTime() - start) / 1e9;
        if (took > 1.8) {
            System.out.printf("five refusals at once took %.1fs: each waited in turn%n", took);
        }

        src.token(); // the next call re-reads: AWSCURRENT still holds T1
        Thread t = new Thread(() -> refuse(src));
        t.start();
        Thread.sleep(100);
        long held = System.nanoTime();
        if (!"T1".equals(src.token())) {
            System.out.println("the token a whole wait outlived is not served to other calls");
        }
        double heldFor = (System.nanoTime() - held) / 1e9;
        if (heldFor > 0.3) {
            System.out.printf("a second refusal of a token a wait outlived held another thread %.1fs%n", heldFor);
        }
        t.join();

        // Clear refuses one call for a reason of its own; then the rotation, seen by another call.
        if (!heldUntilStored("GET /no-product", "POST /invoices")) {
            System.out.println("after a wait a token outlived for one call, a refusal of another call did not hold the calls made during it");
        }
        // The rotator stores late, after a whole wait; the same call refused again.
        if (!heldUntilStored("GET /ping", "GET /ping")) {
            System.out.println("a call refused again after one wait its token outlived did not hold the calls made during it");
        }

        FakeSM down = new FakeSM();
        ClearToken src2 = new ClearToken(down, "s", Duration.ofMinutes(1), Duration.ofMillis(500));
        src2.token();
        down.fail.set(true);
        refuse(src2);
        try {
            src2.token();
            System.out.println("after a wait that ended in failed reads, the refused token is served");
        } catch (RuntimeException e) {
            // the read's error: expected
        }
    }
}
