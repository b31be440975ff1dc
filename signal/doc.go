// Package signal lets a host and its guests meet through a signalling server that learns nothing: it holds the
// signalling protocol's wire types (protocol.go; the server is package signalserver) and its client.
//
// A code such as "7-amber-otter" is a nameplate (7) and secret words (amber-otter). The host (Client.Host; p2phttp
// serve) claims the nameplate and waits; each guest (Client.Join; p2phttp get) that asks for the nameplate gets a
// meeting of its own with the host, a mailbox on the server through which the two exchange four small messages:
//
//	guest -> host  SPAKE2 message (the words and the nameplate are the password)
//	host  -> guest SPAKE2 message, host's key confirmation
//	guest -> host  guest's key confirmation, guest's candidates and cipher offer sealed under the new key
//	host  -> guest host's candidates and cipher offer sealed under the new key (only after the guest's
//	               confirmation verified)
//
// Both sides end with the same fresh key (Meeting.Key, for the transport), the same path cipher (Meeting.Cipher: the
// host's best that the guest offered too, from HostConfig.Ciphers and JoinConfig.Ciphers) and a short
// Meeting.Verifier that people can compare aloud; guests never meet each other.
//
// When the server runs a TURN relay it gives every peer credentials of its own for it (RelayInfo): the host with each
// poll (Host.Relay, HostConfig.OnRelay), the guest with its meeting, in time for JoinConfig.Gather to allocate on the
// relay while the key exchange runs and add the relayed address as a KindRelay candidate. Credentials last minutes; a
// guest renews its own before they expire with Client.RenewRelay, for as long as the renewal token they carry allows.
//
// # What the server learns
//
// The nameplate, the peer IDs it hands out, the timing and sizes of the messages, and the messages themselves. None
// of it lets anyone check a guess of the words offline: a SPAKE2 message is the password's point blinded by a fresh
// random scalar, so it is uniformly distributed whatever the password, and messages of the same code differ from
// meeting to meeting (no table maps them to codes). The confirmations are MACs under the PAKE's session key, which
// depends on the secret scalars of both sides; computing it for a guessed password needs one of those scalars, that
// is, taking part in the meeting. The candidates are sealed (AES-GCM) under a key derived from the session key, so
// the server never sees an address, nor (beyond what a message's size tells) the ciphers a peer offers. A server
// that alters a message makes the confirmation fail (ErrConfirmFailed); so it cannot downgrade the path cipher
// either, since the offers it would have to edit are sealed.
//
// So an attacker, the server's operator included, gets one online guess per meeting it takes part in, and the host
// limits those: every meeting in which the host sent its confirmation and got no valid one back counts as a failed
// guess; HostConfig.MaxFailures (default 3) of them retire the code, and no more guesses are answered at once than
// may still fail. A guest's first message seen twice (a replay) is dropped unanswered.
package signal
