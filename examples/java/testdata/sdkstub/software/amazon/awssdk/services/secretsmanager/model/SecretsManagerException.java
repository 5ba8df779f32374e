// TEST-ONLY STAND-IN for the AWS SDK for Java v2 class of the same name: see SecretsManagerClient.
// The real one extends AwsServiceException, SdkServiceException and SdkException, all unchecked;
// the stub keeps only that: it is a RuntimeException. Its constructor is the stub's own.
package software.amazon.awssdk.services.secretsmanager.model;

public class SecretsManagerException extends RuntimeException {
    public SecretsManagerException(String message) {
        super(message);
    }
}
