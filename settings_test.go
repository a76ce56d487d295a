package main

import (
	"bytes"
	"context"
	"testing"
)

func TestCompletionUnknownShell(t *testing.T) {
	var stdout, stderr bytes.Buffer
	status := run(context.Background(), []string{"--completion", "ksh"}, &stdout, &stderr)
	want := "distlock: invalid value \"ksh\" for flag -completion: the shells are bash, zsh and fish\n"
	if status != exitUsage || stderr.String() != want || stdout.Len() > 0 {
		t.Errorf("--completion ksh: status %d, stdout %q, stderr %q; want 64 and %q", status, stdout.String(), stderr.String(), want)
	}
}
