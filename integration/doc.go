// Package integration holds the end-to-end tests of p2phttp: the real p2phttp binary, built once per run,
// driven across real NATs in Linux network namespaces (see the nslab subpackage). Each scenario runs
// `p2phttp signal` in the lab's public namespace, `serve --dir` behind one NAT and `get` (a 32 MiB file,
// SHA-256 checked) and `forward` with curl behind the other, and the test logs a table of outcome, time to
// connect and transfer rate per scenario (go test -v).
//
// The tests need root, iproute2, nftables and curl; elsewhere they skip with one line, and under CI=true
// they fail instead. P2PHTTP_LAB_VERBOSE=1 runs the peers with -v; their logs are shown when a scenario
// fails.
package integration
