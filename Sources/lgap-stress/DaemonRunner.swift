// Starts, kills and restarts lgapd processes for the stress programs.
import Foundation

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

    /// Starts lgapd and waits until its log says "ready" (or throws after `timeout`).
    func start(timeout: TimeInterval = 60) throws {
        let p = Process()
        p.executableURL = URL(fileURLWithPath: binary)
        p.arguments = arguments
        if !FileManager.default.fileExists(atPath: logPath) { FileManager.default.createFile(atPath: logPath, contents: nil) }
        let log = try FileHandle(forWritingTo: URL(fileURLWithPath: logPath))
        log.seekToEndOfFile()
        let before = log.offsetInFile
        p.standardError = log
        p.standardOutput = log
        try p.run()
        process = p
        starts += 1
        let deadline = Date(timeIntervalSinceNow: timeout)
        while Date() < deadline {
            if let h = FileHandle(forReadingAtPath: logPath) {
                h.seek(toFileOffset: before)
                let text = String(decoding: h.readDataToEndOfFile(), as: UTF8.self)
                try? h.close()
                if text.contains(" ready") { return }
            }
            if !p.isRunning { throw StressError("lgapd exited with \(p.terminationStatus) while starting; see \(logPath)") }
            Thread.sleep(forTimeInterval: 0.02)
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
