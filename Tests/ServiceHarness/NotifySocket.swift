// The test's stand-in for systemd's notification socket: an AF_UNIX datagram socket bound at a path,
// read with a deadline.
import Foundation
#if canImport(Glibc)
    import Glibc
#endif

public final class NotifySocket {
    public let path: String
    private let fd: Int32

    public init(path: String) throws {
        self.path = path
        unlink(path)
        fd = socket(AF_UNIX, Int32(SOCK_DGRAM.rawValue), 0)
        guard fd >= 0 else { throw DaemonError(description: "socket(AF_UNIX): \(String(cString: strerror(errno)))") }
        var addr = sockaddr_un()
        addr.sun_family = sa_family_t(AF_UNIX)
        let bytes = Array(path.utf8)
        guard bytes.count < MemoryLayout.size(ofValue: addr.sun_path) else {
            close(fd)
            throw DaemonError(description: "socket path too long: \(path)")
        }
        withUnsafeMutableBytes(of: &addr.sun_path) { raw in for (i, b) in bytes.enumerated() { raw[i] = b } }
        let rc = withUnsafePointer(to: &addr) {
            $0.withMemoryRebound(to: sockaddr.self, capacity: 1) { bind(fd, $0, socklen_t(MemoryLayout<sockaddr_un>.size)) }
        }
        guard rc == 0 else {
            let e = String(cString: strerror(errno))
            close(fd)
            throw DaemonError(description: "bind \(path): \(e)")
        }
    }

    deinit {
        close(fd)
        unlink(path)
    }

    /// The next datagram, or nil when none arrives within `timeout`.
    public func receive(timeout: TimeInterval) -> String? {
        var p = pollfd(fd: fd, events: Int16(POLLIN), revents: 0)
        guard poll(&p, 1, Int32(max(0, timeout) * 1000)) == 1 else { return nil }
        var buf = [UInt8](repeating: 0, count: 4096)
        let n = recv(fd, &buf, buf.count, 0)
        guard n >= 0 else { return nil }
        return String(decoding: buf.prefix(n), as: UTF8.self)
    }

    /// Reads datagrams until one satisfies `match` or the deadline passes; returns it and everything read.
    public func receive(until match: (String) -> Bool, timeout: TimeInterval) -> (match: String?, read: [String]) {
        let deadline = Date(timeIntervalSinceNow: timeout)
        var read: [String] = []
        while true {
            let left = deadline.timeIntervalSinceNow
            guard left > 0, let d = receive(timeout: left) else { return (nil, read) }
            read.append(d)
            if match(d) { return (d, read) }
        }
    }
}
