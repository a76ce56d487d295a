package blackbox

// The exit statuses the contract gives distlock's own endings
// (docs/reference.md, "Exit status"): the tests hold the binary to the
// numbers, not to the code's names for them.
const (
	exitFree        = 1
	exitUsage       = 64
	exitUnavailable = 69
	exitLockLost    = 70
	exitConflict    = 75
	exitNotFound    = 127
)
