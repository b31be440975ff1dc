// Package rendezvous turns a code into a stream between a host and a guest.
//
// A host (NewHost; p2phttp serve) binds one UDP socket, gathers its candidates (interface addresses and the
// server-reflexive address learnt with STUN) and holds a code's nameplate on the signalling server; every guest
// (Meet; p2phttp get) that comes with the code meets it through the server (package signal: a PAKE over the code's
// words, key confirmation, candidates sealed under the new key), punches a path through both NATs to the host's
// socket and opens the first uTP stream over it (package transport/utp). The host meets any number of guests at
// once, each over a path of its own with keys of its own; guests never meet each other.
//
// When the signalling server runs a TURN relay, each peer also makes a TURN allocation with the credentials the
// server hands it (a host one for all its guests, a guest during its meeting; over UDP, or TCP where UDP is blocked)
// and offers its relayed address as a relay candidate. The path starts on whichever route answers first, so peers
// whose NATs defeat punching still connect; it moves to a direct pair when one works, and back to the relay if that
// pair dies (Session.Route, Session.RouteChanged). Config.NoRelay turns the relay off. Gathering asks both of the
// STUN server's addresses, so each peer knows whether its NAT maps per destination (a symmetric NAT) and says so on
// its candidates: a symmetric NAT against any other is then punched with many ports at once (see transport/utp),
// and only two symmetric NATs need the relay.
//
// The stream is a plain net.Conn; wrap it in a symsock.Socket to speak HTTP/1.1, where the first ReadRequest or
// WriteRequest decides which peer is the client, whatever its role in the meeting:
//
//	host, err := rendezvous.NewHost(ctx, rendezvous.Config{SignalURL: "http://signal.example:8080"})
//	// tell host.Code() (e.g. "7-amber-otter") to the guests; then, for each guest:
//	sess, err := host.Accept(ctx)
//
//	// on the guest's machine:
//	sess, err := rendezvous.Meet(ctx, rendezvous.Config{SignalURL: "http://signal.example:8080", Code: code})
//	if err != nil {
//		return err // a *rendezvous.Error: which step failed and why
//	}
//	defer sess.Close()
//	sock := symsock.New(sess.Stream())
//
// Further streams to the same peer come from Session.OpenStream and Session.AcceptStream; Session.Report says what
// happened (role, verifier, addresses, winning candidate pair and route, RTT, time per step).
package rendezvous
