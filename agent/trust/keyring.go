package trust

import (
	"bytes"
	"context"
	"crypto/rand"
	"encoding/base64"
	"encoding/json"
	"errors"
	"fmt"
	"log/slog"
	"os"
	"sync"
	"time"

	"github.com/meshnet/meshnet/kvstore"
)

// KeyringKey is the store key of the gossip keyring: {"keys": [base64…]},
// the primary key (the one gossip encrypts with) first; every key in it
// decrypts.
const KeyringKey = "cluster/gossip-keys"

// keyringCache is this host's copy of the keyring, in the trust directory:
// a restarted agent talks to its peers before the store answers.
const keyringCache = "gossip-keys.json"

// Bounds of a keyring record, checked before decoding.
const (
	maxKeyringRecord = 4 << 10
	maxKeys          = 8
)

// syncInterval is how often the store's keyring is read.
const syncInterval = time.Second

type keyringRecord struct {
	Keys []string `json:"keys"`
}

func encodeKeys(keys [][]byte) []byte {
	r := keyringRecord{}
	for _, k := range keys {
		r.Keys = append(r.Keys, base64.StdEncoding.EncodeToString(k))
	}
	b, _ := json.Marshal(r)
	return b
}

// decodeKeys reads a keyring record as strictly as a user's gossip-key.
func decodeKeys(b []byte) ([][]byte, error) {
	if len(b) > maxKeyringRecord {
		return nil, fmt.Errorf("the keyring record is %d bytes, limit %d", len(b), maxKeyringRecord)
	}
	var r keyringRecord
	if err := json.Unmarshal(b, &r); err != nil {
		return nil, errors.New("the keyring record is not JSON")
	}
	if len(r.Keys) == 0 || len(r.Keys) > maxKeys {
		return nil, fmt.Errorf("the keyring record holds %d keys, want 1–%d", len(r.Keys), maxKeys)
	}
	var keys [][]byte
	for _, s := range r.Keys {
		k, err := base64.StdEncoding.DecodeString(s)
		if err != nil || (len(k) != 16 && len(k) != 24 && len(k) != 32) {
			return nil, errors.New("a key of the keyring record is not base64 of 16, 24 or 32 bytes")
		}
		keys = append(keys, k)
	}
	return keys, nil
}

// NewGossipKey is a random 32-byte key.
func NewGossipKey() []byte {
	k := make([]byte, 32)
	rand.Read(k)
	return k
}

// CachedKeys is the keyring this host last had, or nil.
func CachedKeys(dir Dir) [][]byte {
	b, err := os.ReadFile(dir.Path(keyringCache))
	if err != nil {
		return nil
	}
	keys, err := decodeKeys(b)
	if err != nil {
		return nil
	}
	return keys
}

// KeySync keeps gossip's keyring equal to the store's, creating the
// store's the first time.
type KeySync struct {
	dir   Dir
	apply func(keys [][]byte) error
	log   *slog.Logger

	mu      sync.Mutex
	current [][]byte // what apply was last given; guarded by mu
	bad     bool     // the record was malformed last time (said once)
}

// NewKeySync returns a KeySync whose gossip has keys now.
func NewKeySync(dir Dir, keys [][]byte, apply func([][]byte) error, log *slog.Logger) *KeySync {
	return &KeySync{dir: dir, apply: apply, log: log, current: keys}
}

// Run follows the store's keyring until ctx ends; ready returns the store
// while it answers.
func (k *KeySync) Run(ctx context.Context, ready func() (kvstore.Store, bool)) {
	t := time.NewTicker(syncInterval)
	defer t.Stop()
	for {
		if s, ok := ready(); ok {
			if err := k.Sync(ctx, s); err != nil && ctx.Err() == nil {
				k.log.Debug("reading the gossip keyring", "err", err)
			}
		}
		select {
		case <-t.C:
		case <-ctx.Done():
			return
		}
	}
}

// Sync reads the store's keyring once (making it if there is none) and
// gives gossip any change.
func (k *KeySync) Sync(ctx context.Context, s kvstore.Store) error {
	kv, err := s.Get(ctx, KeyringKey)
	if errors.Is(err, kvstore.ErrKeyNotFound) {
		if _, err := s.Create(ctx, KeyringKey, encodeKeys([][]byte{NewGossipKey()})); err != nil && !errors.Is(err, kvstore.ErrKeyExists) {
			return err
		}
		kv, err = s.Get(ctx, KeyringKey)
	}
	if err != nil {
		return err
	}
	keys, err := decodeKeys(kv.Value)
	k.mu.Lock()
	defer k.mu.Unlock()
	if err != nil {
		if !k.bad {
			k.log.Error("SECURITY: the cluster store's gossip keyring is malformed; keeping the last good one", "key", KeyringKey, "err", err)
		}
		k.bad = true
		return nil
	}
	k.bad = false
	if equalKeys(keys, k.current) {
		return nil
	}
	if err := k.apply(keys); err != nil {
		return err
	}
	k.current = keys
	k.log.Info("gossip keyring taken from the cluster store", "keys", len(keys))
	return writeFile(k.dir.Path(keyringCache), encodeKeys(keys))
}

func equalKeys(a, b [][]byte) bool {
	if len(a) != len(b) {
		return false
	}
	for i := range a {
		if !bytes.Equal(a[i], b[i]) {
			return false
		}
	}
	return true
}

// RotateKeys replaces the cluster's gossip key in three steps, each
// waiting for every agent to have followed the one before (agents read
// the keyring every second): the new key is added to every keyring, then
// made the one gossip encrypts with, then the old ones are dropped. No
// two agents ever lack a key in common.
func RotateKeys(ctx context.Context, s kvstore.Store, wait time.Duration) error {
	kv, err := s.Get(ctx, KeyringKey)
	if err != nil {
		return err
	}
	old, err := decodeKeys(kv.Value)
	if err != nil {
		return err
	}
	fresh := NewGossipKey()
	steps := [][][]byte{
		append(append([][]byte{}, old[0], fresh), old[1:]...), // installed
		append([][]byte{fresh}, old...),                       // used
		{fresh},                                               // alone
	}
	version := kv.Version
	for i, keys := range steps {
		if len(keys) > maxKeys {
			keys = keys[:maxKeys]
		}
		if version, err = s.CompareAndSwap(ctx, KeyringKey, encodeKeys(keys), version); err != nil {
			return fmt.Errorf("writing the gossip keyring (another rotation at the same time?): %w", err)
		}
		if i < len(steps)-1 {
			select {
			case <-time.After(wait):
			case <-ctx.Done():
				return ctx.Err()
			}
		}
	}
	return nil
}
