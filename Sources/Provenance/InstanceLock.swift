// One daemon per SQLite database: an exclusive flock(2) on "<database>.lock", held for the process's
// life (the kernel drops it when the process dies, kill -9 included, so a stale lock never blocks a
// restart). The file holds the owner's PID, so a refused start can name the daemon in the way.
import Foundation
#if canImport(Glibc)
    import Glibc
#endif

public final class InstanceLock: @unchecked Sendable {
    public let path: String
    private var fd: Int32

    public struct Held: Error, CustomStringConvertible {
        public let path: String
        public let pid: Int32?
        public var description: String {
            "another lgapd (pid \(pid.map(String.init) ?? "unknown")) holds \(path); two daemons must not share one database"
        }
    }

    /// Takes the lock or throws `Held` at once (never waits).
    public init(path: String) throws {
        self.path = path
        fd = open(path, O_RDWR | O_CREAT | O_CLOEXEC | O_NOFOLLOW, 0o600)
        guard fd >= 0 else { throw StoreError.unavailable("cannot open lock file \(path): \(String(cString: strerror(errno)))") }
        guard flock(fd, LOCK_EX | LOCK_NB) == 0 else {
            let e = errno
            var buf = [UInt8](repeating: 0, count: 32)
            let n = pread(fd, &buf, buf.count, 0)
            Glibc.close(fd)
            guard e == EWOULDBLOCK else { throw StoreError.unavailable("cannot lock \(path): \(String(cString: strerror(e)))") }
            let text = n > 0 ? String(decoding: buf[..<n], as: UTF8.self) : ""
            throw Held(path: path, pid: Int32(text.trimmingCharacters(in: .whitespacesAndNewlines)))
        }
        let pid = Array("\(getpid())\n".utf8)
        _ = ftruncate(fd, 0)
        _ = pwrite(fd, pid, pid.count, 0)
    }

    /// The lock file for a database path.
    public static func path(forDatabase db: String) -> String { db + ".lock" }

    public func release() {
        guard fd >= 0 else { return }
        _ = flock(fd, LOCK_UN)
        Glibc.close(fd)
        fd = -1
    }

    deinit { release() }
}
