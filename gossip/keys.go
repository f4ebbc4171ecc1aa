package gossip

import (
	"bytes"
	"errors"
	"slices"

	"github.com/hashicorp/memberlist"
)

// SetKeys replaces the keyring with keys, the first the one gossip
// encrypts with: every key is installed before the primary changes, and
// keys no longer listed are removed last, so a peer that has either the
// old or the new keyring still understands this node.
func (c *Cluster) SetKeys(keys [][]byte) error {
	if c.keyring == nil {
		return errors.New("gossip was started in clear; it cannot be given keys later")
	}
	if len(keys) == 0 {
		return errors.New("a keyring needs a key")
	}
	for _, k := range keys {
		if err := memberlist.ValidateKey(k); err != nil {
			return err
		}
	}
	for _, k := range keys {
		if err := c.keyring.AddKey(k); err != nil {
			return err
		}
	}
	if err := c.keyring.UseKey(keys[0]); err != nil {
		return err
	}
	for _, have := range c.keyring.GetKeys() {
		if !slices.ContainsFunc(keys, func(k []byte) bool { return bytes.Equal(k, have) }) {
			if err := c.keyring.RemoveKey(have); err != nil {
				return err
			}
		}
	}
	return nil
}
