// TEST-ONLY: the ERP load the project's tests run through ClearToken (examples/examples_test.go),
// as examples/python/clear_token.py does when run as a script: it calls a URL from several threads
// for a while and prints {"calls": N, "failed": M, "statuses": {...}}. It is compiled with
// ClearToken.java, Jackson and the stand-ins for the AWS SDK in sdkstub/.
//
//   java example.clear.Demo --secret-id ID --url URL [--threads 4] [--seconds 20] [--interval 0.05]
//       [--ttl 60] [--max-wait 10] [--post-stream] [--follow-redirects]
//
// --post-stream POSTs a body of unknown length (BodyPublishers.ofInputStream), which ClearToken
// never sends twice; --follow-redirects gives ClearToken an HttpClient that follows redirects,
// which it must refuse. A status that is not a number is the name of the exception the call threw.
package example.clear;

import com.fasterxml.jackson.databind.ObjectMapper;
import java.io.ByteArrayInputStream;
import java.net.URI;
import java.net.http.HttpClient;
import java.net.http.HttpRequest;
import java.net.http.HttpResponse;
import java.nio.charset.StandardCharsets;
import java.time.Duration;
import java.util.ArrayList;
import java.util.HashMap;
import java.util.LinkedHashMap;
import java.util.List;
import java.util.Map;
import software.amazon.awssdk.services.secretsmanager.SecretsManagerClient;

public final class Demo {
    public static void main(String[] argv) throws Exception {
        Map<String, String> args = new HashMap<>();
        for (int i = 0; i < argv.length; i++) {
            String name = argv[i];
            if (name.equals("--post-stream") || name.equals("--follow-redirects")) {
                args.put(name, "true");
            } else if (i + 1 < argv.length) {
                args.put(name, argv[++i]);
            } else {
                System.err.println("missing value for " + name);
                System.exit(2);
            }
        }
        String secretId = args.get("--secret-id");
        URI url = URI.create(args.get("--url"));
        int threads = Integer.parseInt(args.getOrDefault("--threads", "4"));
        long seconds = (long) (Double.parseDouble(args.getOrDefault("--seconds", "20")) * 1e9);
        long interval = (long) (Double.parseDouble(args.getOrDefault("--interval", "0.05")) * 1e3);
        Duration ttl = Duration.ofMillis((long) (Double.parseDouble(args.getOrDefault("--ttl", "60")) * 1e3));
        Duration maxWait = Duration.ofMillis((long) (Double.parseDouble(args.getOrDefault("--max-wait", "10")) * 1e3));
        boolean postStream = args.containsKey("--post-stream");

        ClearToken source = new ClearToken(SecretsManagerClient.create(), secretId, ttl, maxWait);
        try {
            source.token();
        } catch (ClearToken.ClearTokenException e) {
            System.err.println(e.getMessage());
            System.exit(1);
        }
        HttpClient client = HttpClient.newBuilder()
                .followRedirects(args.containsKey("--follow-redirects") ? HttpClient.Redirect.NORMAL : HttpClient.Redirect.NEVER)
                .build();
        Map<String, Integer> statuses = new LinkedHashMap<>();
        int[] counts = new int[2]; // calls, failed; guarded by statuses
        long end = System.nanoTime() + seconds;
        List<Thread> workers = new ArrayList<>();
        for (int i = 0; i < threads; i++) {
            Thread w = new Thread(() -> {
                while (true) { // at least one call each, however late the thread starts
                    HttpRequest.Builder req = HttpRequest.newBuilder(url).timeout(Duration.ofSeconds(30));
                    if (postStream) {
                        byte[] body = "{\"invoice\":1}".getBytes(StandardCharsets.UTF_8);
                        req.POST(HttpRequest.BodyPublishers.ofInputStream(() -> new ByteArrayInputStream(body)));
                    }
                    String status;
                    try {
                        status = String.valueOf(source.send(client, req, HttpResponse.BodyHandlers.discarding()).statusCode());
                    } catch (Exception e) { // the name only: a message might quote what it should not
                        status = e.getClass().getSimpleName();
                    }
                    synchronized (statuses) {
                        counts[0]++;
                        statuses.merge(status, 1, Integer::sum);
                        if (!status.equals("200")) {
                            counts[1]++;
                        }
                    }
                    if (System.nanoTime() - end >= 0) {
                        return;
                    }
                    try {
                        Thread.sleep(interval);
                    } catch (InterruptedException e) {
                        return;
                    }
                }
            });
            w.start();
            workers.add(w);
        }
        for (Thread w : workers) {
            w.join();
        }
        Map<String, Object> out = new LinkedHashMap<>();
        synchronized (statuses) {
            out.put("calls", counts[0]);
            out.put("failed", counts[1]);
            out.put("statuses", statuses);
        }
        System.out.println(new ObjectMapper().writeValueAsString(out));
    }
}
