package main

const usage = `distlock: run a command while holding a named lock in etcd

Usage:
  distlock [flags] -- COMMAND [ARG...]   run COMMAND while holding the lock
  distlock [flags] --lock                wait for the lock, keep it, exit 0
  distlock [flags] --unlock              release the lock, whoever holds it
  distlock [flags] --status              show the holder and the waiters
  distlock [flags] --list                show every lock in the realm

Flags (also DISTLOCK_<NAME> in the environment and NAME: in the config file,
except the modes above; precedence: command line > environment > file):
  --lock-name NAME            the lock: 1-255 bytes of printable UTF-8 (required
                              for every mode but --list)
  --reason TEXT               why; shown to everyone who finds the lock taken
  --nowait                    fail at once if the lock is taken (--timeout 0)
  --timeout WAIT              longest wait: seconds (30, 1.5) or a duration
                              (90s, 5m); -1 waits forever (default -1)
  --endpoints URLS            etcd client URLs, comma-separated
                              (default http://127.0.0.1:2379)
  --prefix PREFIX             the realm every key lives under (default /distlock/)
  --config FILE               YAML config file (default /etc/distlock/distlock.yaml)
  --ttl SPAN                  lease TTL of a holder or waiter (default 30s)
  --kill-signal SIG           sent to the command's process group when the lock
                              is lost (default TERM)
  --kill-after SPAN           then SIGKILL if it still runs (default 10s)
  --conflict-exit-code N      status when the lock was not acquired (default 75)
  --dial-timeout SPAN         how long to try to reach etcd (default 5s)
  --quiet, --verbose          say less / more on stderr
  --json                      machine-readable --status and --list
  --version                   print the version
  --cacert, --cert, --key, --insecure-skip-tls-verify, --user, --password
                              TLS and authentication, as in etcdctl; prefer
                              DISTLOCK_PASSWORD or the config file for the password

Exit status:
  0 success, or the command's own status      64  usage or configuration error
  128+N the command was killed by signal N    69  etcd unreachable or refused us
  126 the command cannot be run               70  lock lost while the command ran
  127 the command was not found               75  lock not acquired (--nowait, --timeout)
`
