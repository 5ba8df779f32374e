package rig

import (
	"context"
	"encoding/json"
	"fmt"

	"github.com/aws/aws-sdk-go-v2/aws"
	"github.com/aws/aws-sdk-go-v2/service/secretsmanager"

	"github.com/clear-rotator/clear-rotator/internal/mototest"
)

// CreateSecret creates a secret holding value in the world's Secrets Manager, without faults.
func (w *World) CreateSecret(name, value string) {
	w.T.Helper()
	if _, err := w.SM.CreateSecret(context.Background(), &secretsmanager.CreateSecretInput{
		Name: aws.String(name), SecretString: aws.String(value)}); err != nil {
		w.T.Fatalf("rig: creating %s: %v", name, err)
	}
}

// StoreClientSecrets stores each API client's secret in Secrets Manager, as a deployment keeps
// it (template.yaml's ClientSecretArn parameters, CLEAR_CLIENT_SECRET_ID): a JSON document with
// the key client_secret. It returns the secrets' names in slot order.
func (w *World) StoreClientSecrets() []string {
	w.T.Helper()
	var ids []string
	for i, s := range w.Secrets {
		id := fmt.Sprintf("clients/%s-%d", w.name, i+1)
		if w.Moto != nil {
			id = mototest.Name(w.T, fmt.Sprintf("%s-client-%d", w.name, i+1))
		}
		doc, _ := json.Marshal(map[string]string{"client_secret": s})
		w.CreateSecret(id, string(doc))
		ids = append(ids, id)
	}
	return ids
}

// CreateTokenSecret creates the token secret holding "{}", as template.yaml does before the first
// rotation.
func (w *World) CreateTokenSecret() { w.T.Helper(); w.CreateSecret(w.TokenID, "{}") }
