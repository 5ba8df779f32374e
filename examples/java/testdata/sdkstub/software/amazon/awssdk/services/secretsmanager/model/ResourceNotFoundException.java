// TEST-ONLY STAND-IN for the AWS SDK for Java v2 class of the same name: see SecretsManagerClient.
// Its constructor is the stub's own (the real one is built with builder()).
package software.amazon.awssdk.services.secretsmanager.model;

public final class ResourceNotFoundException extends SecretsManagerException {
    public ResourceNotFoundException(String message) {
        super(message);
    }
}
