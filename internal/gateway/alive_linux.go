package gateway

import (
	"net"
	"syscall"
)

// alive reports whether an idle connection is still open, and has nothing unread on it: one
// non-blocking peek at the socket. Clear (or a load balancer in front of it) closes idle
// connections when it likes; a request written on one would be lost, and a request that may have
// reached Clear is never sent twice, so the gateway looks before it writes.
func alive(c net.Conn) bool {
	sc, ok := c.(syscall.Conn)
	if !ok {
		return true
	}
	raw, err := sc.SyscallConn()
	if err != nil {
		return false
	}
	open := false
	var b [1]byte
	err = raw.Read(func(fd uintptr) bool {
		n, _, err := syscall.Recvfrom(int(fd), b[:], syscall.MSG_PEEK|syscall.MSG_DONTWAIT)
		// Nothing to read (EAGAIN) is the one healthy answer: EOF (n == 0), an error or bytes
		// nobody asked for (a 408, say) all mean the connection is done.
		_ = n
		open = err == syscall.EAGAIN || err == syscall.EWOULDBLOCK
		return true
	})
	return err == nil && open
}
