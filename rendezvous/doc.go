// Package rendezvous turns a code into a stream between a host and a guest.
//
// A host (NewHost; p2phttp serve) binds one UDP socket, gathers its candidates (interface addresses and the
// server-reflexive address learnt with STUN) and holds a code's nameplate on the signalling server; every guest
// (Meet; p2phttp get) that comes with the code meets it through the server (package signal: a PAKE over the code's
// words, key confirmation, candidates sealed under the new key), punches a path through both NATs to the host's
// socket and opens the first uTP stream over it (package transport/utp). The host meets any number of guests at
// once, each over a path of its own with keys of its own; guests never meet each other.
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
// happened (role, verifier, addresses, winning candidate pair, RTT, time per step).
package rendezvous
