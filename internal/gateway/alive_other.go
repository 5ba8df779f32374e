//go:build !linux

package gateway

import "net"

// alive cannot peek at a socket portably; elsewhere than Linux a connection Clear closed while
// idle shows as a failed request instead.
func alive(net.Conn) bool { return true }
