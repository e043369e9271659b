package ledgerfmt

import "errors"

// Sentinel errors, matched with errors.Is. Each failure is an *Error naming
// one of them and the reason.
var (
	// ErrBadReceipt: a receipt that does not prove its record was appended.
	ErrBadReceipt = errors.New("ledgerfmt: receipt does not verify")
	// ErrBadCheckpoint: a checkpoint note that the key did not sign, for
	// another origin, or malformed.
	ErrBadCheckpoint = errors.New("ledgerfmt: bad checkpoint")
	// ErrBadVerifierKey: a verifier key that is not a signed-note ed25519
	// key (name+hash+base64 key).
	ErrBadVerifierKey = errors.New("ledgerfmt: bad verifier key")
)

// Error is a receipt, checkpoint or key that does not verify or does not
// parse: Err is the sentinel that says which, Reason what is wrong. It
// prints "<sentinel>: <reason>". A caller that reports the failure under a
// sentinel of its own prints Reason alone, so that the message says "does
// not verify" once.
type Error struct {
	Err    error
	Reason string
	// OtherContent, for ErrBadReceipt, is set when the receipt itself
	// verifies (its leaf is in a batch the key signed, its jti is right)
	// and names the record's tenant and id, but the record has other
	// content than the one it is for: the record was changed, or is not
	// the one stored (a redacted span, say).
	OtherContent bool
}

func (e *Error) Error() string { return e.Err.Error() + ": " + e.Reason }

// Unwrap returns the sentinel.
func (e *Error) Unwrap() error { return e.Err }
