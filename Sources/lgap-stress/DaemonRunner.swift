// Starts, kills and restarts lgapd processes for the stress programs.
import Foundation
import Glibc

final class DaemonRunner {
    let binary: String
    let arguments: [String]
    let logPath: String
    private(set) var process: Process?
    private(set) var starts = 0

    init(binary: String, arguments: [String], logPath: String) {
        self.binary = binary
        self.arguments = arguments
        self.logPath = logPath
    }

    /// Starts lgapd and waits for its READY=1 notification (the systemd protocol: a datagram on
    /// $NOTIFY_SOCKET), so readiness does not depend on the log level; throws after `timeout`.
    func start(timeout: TimeInterval = 60) throws {
        let socketPath = logPath + ".notify"
        let notify = try NotifySocket(path: socketPath)
        defer { notify.close() }
        let p = Process()
        p.executableURL = URL(fileURLWithPath: binary)
        p.arguments = arguments
        var environment = ProcessInfo.processInfo.environment
        environment["NOTIFY_SOCKET"] = socketPath
        p.environment = environment
        if !FileManager.default.fileExists(atPath: logPath) { FileManager.default.createFile(atPath: logPath, contents: nil) }
        let log = try FileHandle(forWritingTo: URL(fileURLWithPath: logPath))
        log.seekToEndOfFile()
        p.standardError = log
        p.standardOutput = log
        try p.run()
        process = p
        starts += 1
        let deadline = Date(timeIntervalSinceNow: timeout)
        while Date() < deadline {
            if let message = notify.receive(timeoutMs: 20), message.split(separator: "\n").contains("READY=1") { return }
            if !p.isRunning { throw StressError("lgapd exited with \(p.terminationStatus) while starting; see \(logPath)") }
        }
        throw StressError("lgapd did not become ready within \(Int(timeout)) s; see \(logPath)")
    }

    func kill9() {
        guard let p = process, p.isRunning else { return }
        kill(p.processIdentifier, SIGKILL)
        p.waitUntilExit()
    }

    /// SIGTERM; returns the exit status.
    func terminate() -> Int32 {
        guard let p = process, p.isRunning else { return process?.terminationStatus ?? -1 }
        kill(p.processIdentifier, SIGTERM)
        p.waitUntilExit()
        return p.terminationStatus
    }

    var pid: Int32? { process.flatMap { $0.isRunning ? $0.processIdentifier : nil } }

    /// Resident set size in KiB (from /proc/<pid>/status).
    var rssKiB: Int? {
        guard let pid, let text = try? String(contentsOfFile: "/proc/\(pid)/status", encoding: .utf8) else { return nil }
        for line in text.split(separator: "\n") where line.hasPrefix("VmRSS:") {
            return Int(line.split(whereSeparator: { $0 == " " || $0 == "\t" })[1])
        }
        return nil
    }
}

/// A bound AF_UNIX datagram socket that receives sd_notify messages.
final class NotifySocket {
    private let fd: Int32
    private let path: String

    init(path: String) throws {
        self.path = path
        unlink(path)
        fd = socket(AF_UNIX, Int32(SOCK_DGRAM.rawValue), 0)
        guard fd >= 0 else { throw StressError("socket(AF_UNIX): errno \(errno)") }
        var address = sockaddr_un()
        address.sun_family = sa_family_t(AF_UNIX)
        let bytes = Array(path.utf8)
        guard bytes.count < MemoryLayout.size(ofValue: address.sun_path) else { throw StressError("notify socket path too long: \(path)") }
        withUnsafeMutableBytes(of: &address.sun_path) { raw in
            for (i, b) in bytes.enumerated() { raw[i] = b }
        }
        let rc = withUnsafePointer(to: &address) {
            $0.withMemoryRebound(to: sockaddr.self, capacity: 1) { bind(fd, $0, socklen_t(MemoryLayout<sockaddr_un>.size)) }
        }
        guard rc == 0 else { Glibc.close(fd); throw StressError("bind \(path): errno \(errno)") }
    }

    /// One datagram as text, or nil when none arrives within the timeout.
    func receive(timeoutMs: Int32) -> String? {
        var poller = pollfd(fd: fd, events: Int16(POLLIN), revents: 0)
        guard poll(&poller, 1, timeoutMs) > 0 else { return nil }
        var buffer = [UInt8](repeating: 0, count: 4096)
        let n = recv(fd, &buffer, buffer.count, 0)
        return n > 0 ? String(decoding: buffer[..<n], as: UTF8.self) : nil
    }

    func close() {
        Glibc.close(fd)
        unlink(path)
    }
}

struct StressError: Error, CustomStringConvertible {
    let description: String
    init(_ d: String) { description = d }
}

/// lgapd next to this executable (.build/<config>/lgapd), or --lgapd PATH.
func defaultLgapd() -> String {
    URL(fileURLWithPath: CommandLine.arguments[0]).resolvingSymlinksInPath().deletingLastPathComponent().appendingPathComponent("lgapd").path
}

/// A value shared between the stress programs' threads, guarded by a lock.
final class Shared<T>: @unchecked Sendable {
    private var value: T
    private let lock = NSLock()
    init(_ value: T) { self.value = value }
    func with<R>(_ body: (inout T) -> R) -> R { lock.lock(); defer { lock.unlock() }; return body(&value) }
    var get: T { with { $0 } }
}
