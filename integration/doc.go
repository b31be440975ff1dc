// Package integration holds the end-to-end tests of p2phttp: the real p2phttp binary, built once per run,
// driven across real NATs in Linux network namespaces (see the nslab subpackage). The tests need root,
// iproute2, nftables and curl; elsewhere they skip with one line, and under CI=true they fail instead.
package integration
