// TEST-ONLY STAND-IN for the AWS SDK for Java v2 class of the same name: see SecretsManagerClient.
package software.amazon.awssdk.services.secretsmanager.model;

public final class GetSecretValueRequest {
    private final String secretId;
    private final String versionStage;

    private GetSecretValueRequest(String secretId, String versionStage) {
        this.secretId = secretId;
        this.versionStage = versionStage;
    }

    public String secretId() {
        return secretId;
    }

    public String versionStage() {
        return versionStage;
    }

    public static Builder builder() {
        return new Builder() {
            private String secretId;
            private String versionStage;

            @Override
            public Builder secretId(String secretId) {
                this.secretId = secretId;
                return this;
            }

            @Override
            public Builder versionStage(String versionStage) {
                this.versionStage = versionStage;
                return this;
            }

            @Override
            public GetSecretValueRequest build() {
                return new GetSecretValueRequest(secretId, versionStage);
            }
        };
    }

    public interface Builder {
        Builder secretId(String secretId);

        Builder versionStage(String versionStage);

        GetSecretValueRequest build();
    }
}
