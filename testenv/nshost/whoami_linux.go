package nshost

import (
	"context"
	"io"
	"net"
	"sync"
	"time"
)

// WhoAmI is a TCP server that answers every connection with the address
// it came from, to see what a peer's traffic looks like after NAT.
type WhoAmI struct {
	ln net.Listener
	wg sync.WaitGroup
}

// ServeWhoAmI starts a who-am-I server in the namespace on addr.
func (n *NS) ServeWhoAmI(addr string) (*WhoAmI, error) {
	ln, err := n.Listen("tcp", addr)
	if err != nil {
		return nil, err
	}
	s := &WhoAmI{ln: ln}
	s.wg.Go(func() {
		for {
			c, err := ln.Accept()
			if err != nil {
				return
			}
			if a, ok := c.RemoteAddr().(*net.TCPAddr); ok {
				c.Write([]byte(a.IP.String()))
			}
			c.Close()
		}
	})
	return s, nil
}

// Close stops the server and waits for it.
func (s *WhoAmI) Close() error {
	err := s.ln.Close()
	s.wg.Wait()
	return err
}

// AskWhoAmI connects from the namespace to a who-am-I server at addr
// ("IP:PORT") and returns the source address the server saw, within a
// couple of seconds.
func (n *NS) AskWhoAmI(ctx context.Context, addr string) (string, error) {
	ctx, cancel := context.WithTimeout(ctx, 2*time.Second)
	defer cancel()
	c, err := n.Dial(ctx, "tcp", addr)
	if err != nil {
		return "", err
	}
	defer c.Close()
	c.SetDeadline(time.Now().Add(2 * time.Second))
	b, err := io.ReadAll(c)
	return string(b), err
}
