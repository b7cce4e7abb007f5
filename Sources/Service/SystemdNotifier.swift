// sd_notify without libsystemd: datagrams to $NOTIFY_SOCKET (a filesystem path, or an abstract
// socket when it starts with "@"). READY=1 when serving, STATUS=… now and then, WATCHDOG=1 while
// healthy (at half of $WATCHDOG_USEC), STOPPING=1 on shutdown. Without NOTIFY_SOCKET it does nothing.
import Foundation
#if canImport(Glibc)
    import Glibc
#endif

public final class SystemdNotifier: @unchecked Sendable {
    let path: String?
    /// Watchdog interval requested by systemd (WATCHDOG_USEC), if any.
    public let watchdogInterval: TimeInterval?

    public init(environment: [String: String] = ProcessInfo.processInfo.environment) {
        path = environment["NOTIFY_SOCKET"].flatMap { $0.isEmpty ? nil : $0 }
        // sd_watchdog_enabled's rule: a positive WATCHDOG_USEC enables it (0 would make the monitor spin).
        if let usec = environment["WATCHDOG_USEC"].flatMap(Double.init), usec > 0,
            environment["WATCHDOG_PID"].map({ Int32($0) == getpid() }) ?? true
        {
            watchdogInterval = usec / 1e6
        } else {
            watchdogInterval = nil
        }
    }

    var enabled: Bool { path != nil }

    private let lock = NSLock()
    private var announced = false

    /// Sends "KEY=value\n…"; errors are ignored (notification is best effort, as sd_notify's).
    /// Until READY=1 has gone out only STOPPING=1 may precede it: the monitor's STATUS= and WATCHDOG=1
    /// would otherwise race READY, which waits for the ingest loop (systemd arms the watchdog at READY,
    /// and a status before it would describe a service that does not serve yet).
    public func notify(_ state: String) {
        guard let path else { return }
        let lines = state.split(separator: "\n")
        lock.lock()
        if lines.contains("READY=1") { announced = true }
        let send = announced || lines.contains("STOPPING=1")
        lock.unlock()
        guard send else { return }
        let fd = socket(AF_UNIX, Int32(SOCK_DGRAM.rawValue), 0)
        guard fd >= 0 else { return }
        defer { close(fd) }
        var addr = sockaddr_un()
        addr.sun_family = sa_family_t(AF_UNIX)
        var bytes = Array(path.utf8)
        if bytes.first == UInt8(ascii: "@") { bytes[0] = 0 }  // abstract namespace
        let capacity = MemoryLayout.size(ofValue: addr.sun_path)
        guard bytes.count < capacity else { return }
        withUnsafeMutableBytes(of: &addr.sun_path) { raw in
            for (i, b) in bytes.enumerated() { raw[i] = b }
        }
        let length = socklen_t(MemoryLayout<sa_family_t>.size + bytes.count + (bytes.first == 0 ? 0 : 1))
        let message = Array(state.utf8)
        _ = withUnsafePointer(to: &addr) { p in
            p.withMemoryRebound(to: sockaddr.self, capacity: 1) { sa in
                message.withUnsafeBytes { sendto(fd, $0.baseAddress, message.count, Int32(MSG_NOSIGNAL), sa, length) }
            }
        }
    }
}
