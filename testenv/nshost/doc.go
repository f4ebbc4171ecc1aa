// Package nshost builds throw-away network namespaces for tests: "hosts"
// joined by veth pairs to a bridge in an "underlay" namespace, and
// "sandboxes". Everything it makes lives in namespaces it created, so closing
// them removes every device inside; nothing is created in the caller's
// namespace, and nothing talks to an address outside them.
//
// Namespaces are named (/run/netns/NAME) so that `ip netns exec NAME …` works
// while debugging a test. Use [Prefix] for names unique to one test, as
// packages' tests run in parallel.
//
// Code runs inside a namespace through [NS.Do], which locks a fresh goroutine
// to its OS thread, switches, runs, and switches back; a thread that cannot be
// switched back is never unlocked, so the runtime discards it. Netlink work is
// better done through [NS.Netlink], a socket opened in the namespace, which
// needs no thread switching at all. Sockets made by [NS.Listen],
// [NS.ListenPacket] and [NS.Dial] stay in the namespace they were made in and
// may be used from any goroutine.
//
// [OpenNS] opens a namespace someone else made (a sandbox an agent
// created) to run code in it without deleting it on Close, and [RemoveAll]
// deletes whatever named namespaces a test's prefix still matches. Traffic
// helpers — [NS.ServeEcho], [RoundTrip], [NS.Ping] (ICMP over a raw socket,
// no ping binary) and [Throughput] — drive real packets between them.
package nshost
