package record

import (
	"context"
	"errors"
	"fmt"
	"strings"
	"testing"

	"github.com/nats-io/nats.go"
)

// TestExplainTimeout: a JetStream request that gets no answer, which is
// what a request the broker refuses gets, says which rights to check.
func TestExplainTimeout(t *testing.T) {
	for _, err := range []error{context.DeadlineExceeded, fmt.Errorf("x: %w", nats.ErrTimeout)} {
		got := explain(err)
		if !errors.Is(got, err) || !strings.Contains(got.Error(), "replay or record right") || !strings.Contains(got.Error(), "docs/security.md") {
			t.Errorf("explain(%v) = %v", err, got)
		}
	}
	if err := errors.New("other"); explain(err) != err {
		t.Errorf("explain changed an error it has nothing to say about: %v", explain(err))
	}
}
