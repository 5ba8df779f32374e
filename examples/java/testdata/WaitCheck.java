// WaitCheck: the Java recipe's waits against a Secrets Manager stand-in (a token that never
// changes, or reads that fail), as examples_test.go's pythonWaitDriver checks the Python recipe's.
// It prints one line per check that failed: as cleartoken, concurrent refusals share one wait, a
// second refusal of a token a whole wait found still current holds no other thread, and a wait that
// ends in failed reads leaves the refused token unused.
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

    /** A secret whose AWSCURRENT always holds T1, or whose reads all fail while fail is set. */
    static final class FakeSM implements SecretsManagerClient {
        final AtomicBoolean fail = new AtomicBoolean();

        @Override
        public GetSecretValueResponse getSecretValue(GetSecretValueRequest in) {
            if (fail.get()) {
                throw new SecretsManagerException("EndpointConnectionError");
            }
            return GetSecretValueResponse.builder().secretString("{\"access_token\":\"T1\",\"valid_till\":null}").build();
        }
    }

    static void refuse(ClearToken src) {
        try {
            src.refused("T1");
        } catch (RuntimeException | InterruptedException e) {
            // the wait found no newer token: expected
        }
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
