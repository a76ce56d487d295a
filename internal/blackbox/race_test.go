//go:build race

package blackbox

// raceEnabled: the tests run with -race, and so does the distlock they
// build.
const raceEnabled = true
