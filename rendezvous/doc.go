// Package rendezvous turns a room code into a stream to the peer who holds the same code.
//
// Meet gathers this machine's UDP candidates (interface addresses and the server-reflexive address learnt with STUN),
// exchanges them with the peer through the signalling server (package signal), punches a path through both NATs and
// opens the first uTP stream over it (package transport/utp). The stream is a plain net.Conn; wrap it in a
// symsock.Socket to speak HTTP/1.1, where the first ReadRequest or WriteRequest decides which peer is the client:
//
//	sess, err := rendezvous.Meet(ctx, rendezvous.Config{SignalURL: "http://signal.example:8080", Code: code})
//	if err != nil {
//		return err // a *rendezvous.Error: which step failed and why
//	}
//	defer sess.Close()
//	sock := symsock.New(sess.Stream())
//
// Further streams to the same peer come from Session.OpenStream and Session.AcceptStream; Session.Report says what
// happened (addresses, winning candidate pair, RTT, time per step).
package rendezvous
