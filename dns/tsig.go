package dns

import (
	"crypto/hmac"
	"crypto/sha1"
	"crypto/sha256"
	"crypto/sha512"
	"encoding/base64"
	"encoding/hex"
	"fmt"
	"hash"
	"sync/atomic"

	mdns "github.com/miekg/dns"

	"github.com/multihome/multihome/config"
)

// tsigKey is one configured TSIG key.
type tsigKey struct {
	name   string // canonical
	alg    string // DNS algorithm name, canonical
	secret []byte
}

// keyring is an mdns.TsigProvider over the configured keys; a reload
// swaps the keys in place, so long-lived servers and clients see them.
type keyring struct {
	keys atomic.Pointer[map[string]*tsigKey]
}

func compileKeys(d *config.DNS) (map[string]*tsigKey, error) {
	keys := map[string]*tsigKey{}
	if d == nil {
		return keys, nil
	}
	for i := range d.Keys {
		k := &d.Keys[i]
		name, ok := config.AbsName(k.Name, ".")
		if !ok {
			return nil, fmt.Errorf("bad key name %q", k.Name)
		}
		alg, ok := config.TSIGAlgorithms[def(k.Algorithm, "hmac-sha256")]
		if !ok {
			return nil, fmt.Errorf("key %s: unknown algorithm %q", name, k.Algorithm)
		}
		s, err := k.KeySecret()
		if err != nil {
			return nil, err
		}
		raw, _ := base64.StdEncoding.DecodeString(s)
		keys[name] = &tsigKey{name: name, alg: mdns.CanonicalName(alg), secret: raw}
	}
	return keys, nil
}

func (kr *keyring) set(keys map[string]*tsigKey) { kr.keys.Store(&keys) }

func (kr *keyring) get(name string) *tsigKey {
	m := kr.keys.Load()
	if m == nil {
		return nil
	}
	return (*m)[mdns.CanonicalName(name)]
}

func (kr *keyring) mac(msg []byte, t *mdns.TSIG) ([]byte, error) {
	k := kr.get(t.Hdr.Name)
	if k == nil {
		return nil, mdns.ErrSecret
	}
	if mdns.CanonicalName(t.Algorithm) != k.alg {
		return nil, mdns.ErrKeyAlg
	}
	var h func() hash.Hash
	switch k.alg {
	case mdns.HmacSHA1:
		h = sha1.New
	case mdns.HmacSHA224:
		h = sha256.New224
	case mdns.HmacSHA256:
		h = sha256.New
	case mdns.HmacSHA384:
		h = sha512.New384
	case mdns.HmacSHA512:
		h = sha512.New
	default:
		return nil, mdns.ErrKeyAlg
	}
	m := hmac.New(h, k.secret)
	m.Write(msg)
	return m.Sum(nil), nil
}

// Generate implements mdns.TsigProvider.
func (kr *keyring) Generate(msg []byte, t *mdns.TSIG) ([]byte, error) { return kr.mac(msg, t) }

// Verify implements mdns.TsigProvider.
func (kr *keyring) Verify(msg []byte, t *mdns.TSIG) error {
	b, err := kr.mac(msg, t)
	if err != nil {
		return err
	}
	want, err := hex.DecodeString(t.MAC)
	if err != nil {
		return err
	}
	if !hmac.Equal(b, want) {
		return mdns.ErrSig
	}
	return nil
}
