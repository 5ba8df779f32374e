// TEST-ONLY STAND-IN for the AWS SDK for Java v2 class of the same name, which this project's
// machines cannot download: it has the signatures ClearToken.java (and the test harness) use, as
// the real SDK declares them, so that the recipe's source is compiled unchanged. It speaks
// Secrets Manager's JSON wire protocol (awsJson1_1) to AWS_ENDPOINT_URL, as the real client does
// when that variable is set; it does not sign (moto, the tests' Secrets Manager, does not check
// signatures, but routes by the credential scope of the Authorization header) and does not retry.
package software.amazon.awssdk.services.secretsmanager;

import com.fasterxml.jackson.databind.JsonNode;
import com.fasterxml.jackson.databind.ObjectMapper;
import com.fasterxml.jackson.databind.node.ObjectNode;
import java.io.IOException;
import java.io.UncheckedIOException;
import java.net.URI;
import java.net.http.HttpClient;
import java.net.http.HttpRequest;
import java.net.http.HttpResponse;
import java.time.LocalDate;
import java.time.format.DateTimeFormatter;
import software.amazon.awssdk.services.secretsmanager.model.GetSecretValueRequest;
import software.amazon.awssdk.services.secretsmanager.model.GetSecretValueResponse;
import software.amazon.awssdk.services.secretsmanager.model.ResourceNotFoundException;
import software.amazon.awssdk.services.secretsmanager.model.SecretsManagerException;

public interface SecretsManagerClient {
    static SecretsManagerClient create() {
        return new WireClient();
    }

    GetSecretValueResponse getSecretValue(GetSecretValueRequest getSecretValueRequest);
}

/** GetSecretValue on the wire: POST / with X-Amz-Target secretsmanager.GetSecretValue. */
final class WireClient implements SecretsManagerClient {
    private static final ObjectMapper JSON = new ObjectMapper();
    private final HttpClient http = HttpClient.newBuilder().version(HttpClient.Version.HTTP_1_1).build();
    private final String region = env("AWS_REGION", env("AWS_DEFAULT_REGION", "us-east-1"));
    private final URI endpoint = URI.create(env("AWS_ENDPOINT_URL", "https://secretsmanager." + region + ".amazonaws.com") + "/");
    private final String accessKey = env("AWS_ACCESS_KEY_ID", "");

    private static String env(String name, String otherwise) {
        String v = System.getenv(name);
        return v == null || v.isEmpty() ? otherwise : v;
    }

    @Override
    public GetSecretValueResponse getSecretValue(GetSecretValueRequest in) {
        ObjectNode body = JSON.createObjectNode().put("SecretId", in.secretId());
        if (in.versionStage() != null) {
            body.put("VersionStage", in.versionStage());
        }
        String date = LocalDate.now(java.time.ZoneOffset.UTC).format(DateTimeFormatter.BASIC_ISO_DATE);
        HttpRequest req = HttpRequest.newBuilder(endpoint)
                .header("Content-Type", "application/x-amz-json-1.1")
                .header("X-Amz-Target", "secretsmanager.GetSecretValue")
                .header("Authorization", "AWS4-HMAC-SHA256 Credential=" + accessKey + "/" + date + "/" + region
                        + "/secretsmanager/aws4_request, SignedHeaders=content-type;host;x-amz-target, Signature=unsigned")
                .POST(HttpRequest.BodyPublishers.ofString(body.toString()))
                .build();
        JsonNode out;
        int status;
        try {
            HttpResponse<String> resp = http.send(req, HttpResponse.BodyHandlers.ofString());
            status = resp.statusCode();
            out = JSON.readTree(resp.body());
        } catch (IOException e) {
            throw new UncheckedIOException(e); // the real client: SdkClientException
        } catch (InterruptedException e) {
            Thread.currentThread().interrupt();
            throw new IllegalStateException(e); // the real client: AbortedException
        }
        if (status / 100 != 2) {
            String type = out.path("__type").asText("");
            type = type.substring(type.lastIndexOf('#') + 1);
            String message = type + " (Service: SecretsManager, Status Code: " + status + ")";
            if (type.equals("ResourceNotFoundException")) {
                throw new ResourceNotFoundException(message);
            }
            throw new SecretsManagerException(message);
        }
        JsonNode s = out.get("SecretString");
        return GetSecretValueResponse.builder().secretString(s == null || s.isNull() ? null : s.asText()).build();
    }
}
