// Package sandbox manages the kernel and filesystem side of a sandbox: the
// named network namespace /run/netns/NAME and the resolver files in
// /etc/netns/NAME that `ip netns exec NAME …` bind-mounts over /etc. The
// daemon keeps the records; this package only creates, inspects and removes.
//
// The namespace is made the way iproute2's `ip netns add` makes it, so the
// two interoperate: /run/netns is a shared mount point, and each sandbox is
// an empty file with its namespace bind-mounted onto it.
//
// Every function is safe for concurrent use, on different names. Creating a
// namespace needs a thread inside it for a moment: that is always a fresh
// goroutine locked to its OS thread, never the caller's, and a thread that
// cannot be put back into its original namespace is never unlocked, so the
// Go runtime destroys it rather than run other goroutines in the wrong
// namespace. Operations on the same name must be serialised by the caller.
package sandbox
