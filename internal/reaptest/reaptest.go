// Package reaptest is what the tests of distlock as PID 1 (a container's
// entrypoint) share: the main package's script and internal/release's
// static binary run the same check.
package reaptest

// ZombieCheck is a shell script to run under distlock as PID 1 of a PID
// namespace: it leaves orphans that exit (with the shell that started them
// gone, they are distlock's to reap), waits, prints distlock's pid and the
// zombies it counts in the namespace, and exits 3.
const ZombieCheck = `
echo "pid of distlock: $PPID"
sh -c 'sleep 0.1 & sleep 0.1 & sleep 0.2 &'
sleep 1
n=0
for f in /proc/[0-9]*/stat; do
  read -r pid comm state rest < $f 2>/dev/null || continue
  [ "$state" = Z ] && n=$((n+1))
done
echo "zombies: $n"
exit 3`
