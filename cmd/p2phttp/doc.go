// Command p2phttp lets two machines behind NATs talk HTTP to each other directly.
//
//	p2phttp signal [--http ADDR] [--stun ADDR]       run the signalling server with STUN
//	p2phttp serve [--dir DIR | --proxy URL] [CODE]   answer a peer's HTTP requests
//	p2phttp get CODE PATH [-o FILE]                  fetch PATH from the peer
//	p2phttp forward CODE [--listen ADDR]             a local HTTP endpoint carried to the peer
//	p2phttp demo                                     everything in one process on loopback
//
// Run "p2phttp COMMAND --help" for the flags and examples of each command.
package main
