package lock

import (
	"context"
	"errors"
	"strings"
	"testing"
)

// TestStillHeld: a holder's key is held until it goes, by --unlock or
// with its lease, and only with its own fencing token.
func TestStillHeld(t *testing.T) {
	t.Parallel()
	client := newClient(t, testEtcd(t).Endpoint())
	ctx := context.Background()
	req := request(t, "held")
	h := mustAcquire(t, client, req)
	other := mustAcquire(t, client, request(t, "held-too"))
	mine := HeldKey{Name: req.Name, Key: h.Key, Token: h.FencingToken}
	both := []HeldKey{mine, {Name: "held-too", Key: other.Key, Token: other.FencingToken}}
	if err := StillHeld(ctx, client, req.Realm, both); err != nil {
		t.Fatalf("held: StillHeld = %v, want nil", err)
	}
	var notHeld *NotHeldError
	for _, bad := range []HeldKey{
		{Name: req.Name, Key: h.Key, Token: h.FencingToken + 1},             // another holder's token
		{Name: "held-too", Key: h.Key, Token: h.FencingToken},               // not under that lock
		{Name: req.Name, Key: Prefix(req.Realm, req.Name) + "!x", Token: 1}, // not a holder's key
	} {
		if err := StillHeld(ctx, client, req.Realm, []HeldKey{bad}); !errors.As(err, &notHeld) {
			t.Errorf("StillHeld(%+v) = %v, want a NotHeldError", bad, err)
		}
	}

	// A stopping record that names the key is enough, whatever else is
	// there.
	record := stoppingKey(StoppingPrefix(req.Realm, req.Name), h.FencingToken, int64(h.lease.id))
	if _, err := client.Put(ctx, record, "{}"); err != nil {
		t.Fatal(err)
	}
	if err := StillHeld(ctx, client, req.Realm, both); !errors.As(err, &notHeld) || !strings.Contains(err.Error(), "stopping record") {
		t.Fatalf("with a stopping record: StillHeld = %v, want a NotHeldError that names it", err)
	}
	if _, err := client.Delete(ctx, record); err != nil {
		t.Fatal(err)
	}

	// --unlock: the key makes way for a stopping record; the set's other
	// lock is still held.
	if _, err := Unlock(ctx, client, req.Realm, req.Name); err != nil {
		t.Fatal(err)
	}
	if err := StillHeld(ctx, client, req.Realm, both); !errors.As(err, &notHeld) || notHeld.Name != req.Name {
		t.Fatalf("unlocked: StillHeld = %v, want a NotHeldError for %q", err, req.Name)
	}
	if err := StillHeld(ctx, client, req.Realm, both[1:]); err != nil {
		t.Fatalf("the other lock: StillHeld = %v, want nil", err)
	}
	// Its lease revoked: gone too.
	if err := other.Release(ctx); err != nil {
		t.Fatal(err)
	}
	if err := StillHeld(ctx, client, req.Realm, both[1:]); !errors.As(err, &notHeld) {
		t.Fatalf("released: StillHeld = %v, want a NotHeldError", err)
	}
}
