package dial

import "testing"

// TestWarmMessages: every message warmed goes through gRPC's own codec
// both ways; were one of etcd's types no longer a protobuf message there,
// the warm-up would build nothing and this says so.
func TestWarmMessages(t *testing.T) {
	if err := warmMessages(); err != nil {
		t.Fatal(err)
	}
}
