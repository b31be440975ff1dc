// Command p2phttp lets two machines behind NATs talk HTTP to each other directly.
//
//	p2phttp signal [--http ADDR] [--stun ADDR]       run the signalling server with STUN
//	p2phttp serve [--dir DIR | --proxy URL]          answer a peer's HTTP requests; prints a code
//	p2phttp get PATH [-o FILE | -O]                  fetch PATH from the peer (resumes FILE.part)
//	p2phttp forward [--listen ADDR]                  a local HTTP endpoint carried to the peer
//	p2phttp demo                                     everything in one process on loopback
//	p2phttp --version
//
// get and forward read the code from $P2PHTTP_CODE, else ask for it on a terminal, else read it from stdin, so that
// it never shows in the process list. Run "p2phttp COMMAND --help" for the flags and examples of each command.
package main
