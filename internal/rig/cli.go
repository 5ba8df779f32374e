package rig

import (
	"context"
	"errors"

	"github.com/aws/aws-sdk-go-v2/aws"
	"github.com/aws/aws-sdk-go-v2/service/secretsmanager"
	"github.com/aws/aws-sdk-go-v2/service/secretsmanager/types"
)

// motoSecretMissing reports whether moto certainly has no token secret. moto answers
// ListSecretVersionIds for a missing secret with a 500, which the SDK retries for seconds; tests
// that never store a token (usage errors, refused configurations) would pay that in their leak
// scan. DescribeSecret answers a proper ResourceNotFoundException at once.
func (w *World) motoSecretMissing() bool {
	_, err := w.Moto.Client().DescribeSecret(context.Background(), &secretsmanager.DescribeSecretInput{SecretId: aws.String(w.TokenID)})
	var nf *types.ResourceNotFoundException
	return errors.As(err, &nf)
}
