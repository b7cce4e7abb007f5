// Connection control for a bound socket, which libzmq itself does not offer: a cap on concurrent
// peer connections (the memory libzmq may buffer for us is per connection), and a graceful end of
// intake that loses no message already on the wire.
//
// Both work on the connection's file descriptor, which the socket monitor reports: `shutdown(2)` on
// it (never close: libzmq owns the descriptor and closes it itself once it sees the end of the
// stream). Before touching a descriptor the guard checks that it is still a stream socket whose
// local address is the bound endpoint's, so a number libzmq already closed and the kernel reused is
// never shut down by mistake.
//
// Drain (SIGTERM in pull mode): `shutdown(fd, SHUT_WR)` sends our FIN on every connection. The peer's
// libzmq sees the end of the stream, stops writing and closes; whatever it had already written still
// arrives and is read (our read side stays open) until its FIN. A message still in its queue stays
// there (a connecting PUSH keeps its queue across reconnects) and is sent to lgapd after restart.
// Connections accepted while draining are shut before their handshake completes, so they carry no
// message. Once no connection is open and nothing is left to read, closing the socket loses nothing.
//
// The cap holds from the first byte: shutting an over-cap connection when its accept event is read
// comes too late when the socket's thread is busy (a paused intake reads events every 100 ms), and a
// connection whose handshake completed meanwhile may already have handed over high_water_mark
// messages. So the ZAP handler asks `admitsHandshake()` before any handshake completes; it reads the
// pending events itself (libzmq reports the accept before the handshake starts, so the connection
// asking is already counted). The guard is therefore used from two threads, serialised by its lock
// (libzmq allows a socket to move between threads behind a full memory barrier).
import Foundation
#if canImport(Glibc)
    import Glibc
#endif

public final class ConnectionGuard: @unchecked Sendable {
    public let monitor: SocketMonitor
    /// The bound endpoint's local address ("tcp://127.0.0.1:5555" → 127.0.0.1:5555; ipc: the path).
    private var localAddress: String
    public let maxConnections: Int
    private let lock = NSLock()
    private var open: Set<Int32> = []
    private var draining = false
    private var closed = false
    /// Called (with the number of open connections) for each connection shut because of the cap.
    public var onRefused: ((Int) -> Void)?

    /// Connecting sockets: the descriptor's peer (not local) address is the endpoint's.
    private let connecting: Bool

    /// Create the guard before the socket binds or connects, so no connection escapes the monitor;
    /// then name the endpoint (`setEndpoint`: the address bound, its last endpoint, or connected to).
    public init(socket: ZMQSocket, context: ZMQContext, connecting: Bool, maxConnections: Int) throws {
        monitor = try socket.monitor(context)
        localAddress = ""
        self.connecting = connecting
        self.maxConnections = maxConnections
    }

    public func setEndpoint(_ endpoint: String) { localAddress = Self.address(ofEndpoint: endpoint) }

    /// Handles every event waiting on the monitor.
    public func pump() throws {
        lock.lock()
        defer { lock.unlock() }
        try pumpLocked()
    }

    /// Whether a handshake starting now may complete: the cap is not exceeded (counting the connection
    /// that asks) and intake is not draining. Called by the ZAP handler's thread.
    public func admitsHandshake() -> Bool {
        lock.lock()
        defer { lock.unlock() }
        guard !closed else { return false }
        try? pumpLocked()
        return !draining && open.count <= maxConnections
    }

    /// Connections open now (accepted or connected, not yet reported closed).
    public var openCount: Int { lock.lock(); defer { lock.unlock() }; return open.count }

    private func pumpLocked() throws {
        guard !closed else { return }
        while let (event, _) = try monitor.next(timeoutMs: 0) {
            switch event {
            case .accepted(let fd), .connected(let fd):
                open.insert(fd)
                if draining {
                    halfClose(fd)
                } else if open.count > maxConnections {
                    if owned(fd) { _ = shutdown(fd, Int32(SHUT_RDWR)) }
                    onRefused?(open.count)
                }
            case .disconnected(let fd), .closed(let fd):
                open.remove(fd)
            default:
                break
            }
        }
    }

    /// Starts the graceful end of intake: our FIN on every open connection (and on each new one).
    public func beginDrain() throws {
        lock.lock()
        defer { lock.unlock() }
        try pumpLocked()
        draining = true
        for fd in open { halfClose(fd) }
    }

    /// Connections our FIN went to.
    public var halfClosed: Int { lock.lock(); defer { lock.unlock() }; return halfClosedCount }
    private var halfClosedCount = 0

    /// No connection is open any more (after `beginDrain`, every peer has closed its side).
    public var drained: Bool { lock.lock(); defer { lock.unlock() }; return draining && open.isEmpty }

    /// Closes the monitor; the guard admits no handshake after this.
    public func close() {
        lock.lock()
        defer { lock.unlock() }
        closed = true
        monitor.close()
    }

    private func halfClose(_ fd: Int32) {
        if owned(fd), shutdown(fd, Int32(SHUT_WR)) == 0 { halfClosedCount += 1 }
    }

    /// Whether `fd` is still one of this endpoint's connections (a stream socket on our address).
    private func owned(_ fd: Int32) -> Bool {
        var type: Int32 = 0
        var len = socklen_t(MemoryLayout<Int32>.size)
        guard getsockopt(fd, SOL_SOCKET, SO_TYPE, &type, &len) == 0, type == Int32(SOCK_STREAM.rawValue) else { return false }
        if connecting {
            // A connection we made: its peer port is the endpoint's (the host may be a name).
            guard let peer = Self.address(of: fd, peer: true), let port = localAddress.split(separator: ":").last else { return false }
            return peer.hasSuffix(":" + port) || peer == localAddress
        }
        guard let local = Self.address(of: fd, peer: false) else { return false }
        // A wildcard bind ("0.0.0.0:5555", "[::]:5555") accepts on any local address: compare the port.
        for wildcard in ["0.0.0.0:", "[::]:"] where localAddress.hasPrefix(wildcard) {
            return local.hasSuffix(":" + localAddress.dropFirst(wildcard.count))
        }
        return local == localAddress
    }

    static func address(ofEndpoint e: String) -> String {
        if e.hasPrefix("tcp://") { return String(e.dropFirst(6)) }
        if e.hasPrefix("ipc://") { return String(e.dropFirst(6)) }
        return e
    }

    /// The local (or peer) address of a socket: "host:port" (IPv6 in brackets, as libzmq writes
    /// endpoints) or an AF_UNIX path.
    static func address(of fd: Int32, peer: Bool) -> String? {
        var storage = sockaddr_storage()
        var len = socklen_t(MemoryLayout<sockaddr_storage>.size)
        let rc = withUnsafeMutablePointer(to: &storage) {
            $0.withMemoryRebound(to: sockaddr.self, capacity: 1) { peer ? getpeername(fd, $0, &len) : getsockname(fd, $0, &len) }
        }
        guard rc == 0 else { return nil }
        switch Int32(storage.ss_family) {
        case AF_INET:
            return withUnsafePointer(to: &storage) {
                $0.withMemoryRebound(to: sockaddr_in.self, capacity: 1) { sin in
                    var buf = [CChar](repeating: 0, count: Int(INET_ADDRSTRLEN))
                    var addr = sin.pointee.sin_addr
                    inet_ntop(AF_INET, &addr, &buf, socklen_t(buf.count))
                    return "\(String(cString: buf)):\(UInt16(bigEndian: sin.pointee.sin_port))"
                }
            }
        case AF_INET6:
            return withUnsafePointer(to: &storage) {
                $0.withMemoryRebound(to: sockaddr_in6.self, capacity: 1) { sin in
                    var buf = [CChar](repeating: 0, count: Int(INET6_ADDRSTRLEN))
                    var addr = sin.pointee.sin6_addr
                    inet_ntop(AF_INET6, &addr, &buf, socklen_t(buf.count))
                    return "[\(String(cString: buf))]:\(UInt16(bigEndian: sin.pointee.sin6_port))"
                }
            }
        case AF_UNIX:
            return withUnsafePointer(to: &storage) {
                $0.withMemoryRebound(to: sockaddr_un.self, capacity: 1) { sun in
                    withUnsafeBytes(of: sun.pointee.sun_path) { raw in String(decoding: raw.prefix { $0 != 0 }, as: UTF8.self) }
                }
            }
        default:
            return nil
        }
    }
}
