package agent

import (
	"context"
	"fmt"
	"time"

	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/client-go/kubernetes"

	v1 "github.com/cairn-net/cairn/apis/cairn/v1alpha1"
	"github.com/cairn-net/cairn/bgp/peering"
)

// secretReader reads BGP passwords from Secrets in the agent's namespace.
// Errors name the Secret and key, never the value.
func secretReader(kube kubernetes.Interface, namespace string) peering.Secrets {
	return func(ref v1.SecretKeyRef) (string, error) {
		ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
		defer cancel()
		s, err := kube.CoreV1().Secrets(namespace).Get(ctx, ref.Name, metav1.GetOptions{})
		if err != nil {
			return "", fmt.Errorf("read Secret %s/%s: %w", namespace, ref.Name, err)
		}
		v, ok := s.Data[ref.Key]
		if !ok {
			return "", fmt.Errorf("Secret %s/%s has no key %q", namespace, ref.Name, ref.Key)
		}
		return string(v), nil
	}
}
