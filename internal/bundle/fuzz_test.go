package bundle_test

import (
	"crypto/ed25519"
	"testing"

	"github.com/loglineos/loglineos/internal/bundle"
)

// FuzzLoad feeds arbitrary bytes to Load: it must refuse them with a
// *LoadError (or, for a genuine bundle, load), never panic.
func FuzzLoad(f *testing.F) {
	f.Add(stdBundle(f))
	f.Add([]byte(bundle.Magic))
	f.Add([]byte{})
	opts := bundle.LoadOptions{Trusted: []ed25519.PublicKey{pub(testKey(1))}}
	f.Fuzz(func(t *testing.T, data []byte) {
		b, err := bundle.Load(data, opts)
		if (b == nil) == (err == nil) {
			t.Fatalf("Load = %v, %v", b, err)
		}
		if _, ok := err.(*bundle.LoadError); err != nil && !ok {
			t.Fatalf("error %T is not a *LoadError: %v", err, err)
		}
	})
}
