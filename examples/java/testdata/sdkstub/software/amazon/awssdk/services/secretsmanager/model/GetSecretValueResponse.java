// TEST-ONLY STAND-IN for the AWS SDK for Java v2 class of the same name: see SecretsManagerClient.
package software.amazon.awssdk.services.secretsmanager.model;

public final class GetSecretValueResponse {
    private final String secretString;

    private GetSecretValueResponse(String secretString) {
        this.secretString = secretString;
    }

    /** The secret's SecretString; null for a binary secret. */
    public String secretString() {
        return secretString;
    }

    public static Builder builder() {
        return new Builder() {
            private String secretString;

            @Override
            public Builder secretString(String secretString) {
                this.secretString = secretString;
                return this;
            }

            @Override
            public GetSecretValueResponse build() {
                return new GetSecretValueResponse(secretString);
            }
        };
    }

    public interface Builder {
        Builder secretString(String secretString);

        GetSecretValueResponse build();
    }
}
