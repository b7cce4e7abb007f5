// A real lgapd child process on loopback: free ports, a TOML config of the test's own, stderr captured
// to a file (quoted in failure messages), readiness from its "ready" log line, SIGTERM / SIGKILL.
// lgapd is the binary built beside the running test bundle (`swift build --build-tests`), so the
// tests run against whichever scratch path built them.
import Foundation
#if canImport(Glibc)
import Glibc
#endif

struct DaemonError: Error, CustomStringConvertible {
    let description: String
}

final class DaemonProcess: @unchecked Sendable {
    struct Options {
        var mode = "pull"
        var pack: String
        /// Keys for [daemon], [ingest] and [pipeline] that replace the test defaults.
        var daemon: [String: String] = [:]
        var ingest: [String: String] = [:]
        var pipeline: [String: String] = [:]
        var environment: [String: String] = [:]
        /// A config file to use as is instead of the one written from the fields above.
        var configFile: String? = nil
    }

    let options: Options
    let directory: String
    let database: String
    let configPath: String
    private(set) var ingestPort = 0
    private(set) var resultsPort = 0
    private(set) var launches = 0
    private var process: Process?
    private var exited = DispatchSemaphore(value: 0)
    private(set) var stderrPath = ""

    var ingestEndpoint: String { "tcp://127.0.0.1:\(ingestPort)" }
    var resultsEndpoint: String { "tcp://127.0.0.1:\(resultsPort)" }
    var pid: Int32 { process?.processIdentifier ?? 0 }
    var isRunning: Bool { process?.isRunning ?? false }

    /// `directory` holds the database, the config and the stderr logs.
    init(directory: String, options: Options) throws {
        self.options = options
        self.directory = directory
        database = directory + "/db.sqlite"
        configPath = options.configFile ?? directory + "/lgapd.toml"
        if options.configFile == nil { try Self.configText(options).write(toFile: configPath, atomically: true, encoding: .utf8) }
    }

    static func configText(_ o: Options) -> String {
        func section(_ name: String, _ defaults: [String: String], _ overrides: [String: String]) -> String {
            let merged = defaults.merging(overrides) { $1 }
            return "[\(name)]\n" + merged.sorted { $0.key < $1.key }.map { "\($0.key) = \($0.value)" }.joined(separator: "\n") + "\n"
        }
        // One engine thread (the suite shares 2 cores with other work); STATUS= every second.
        return section("daemon", ["log_level": "\"info\"", "shutdown_timeout_s": "20", "status_interval_s": "1", "threads": "1"], o.daemon)
            + section("ingest", [:], o.ingest)
            + section("pipeline", ["max_wait_ms": "2"], o.pipeline)
    }

    // MARK: Locating lgapd

    /// lgapd from the products directory of the running test bundle.
    static var executable: String { get throws { try product("lgapd") } }

    /// An executable product (lgapd, lgapctl) built beside the running test bundle.
    static func product(_ name: String) throws -> String {
        var candidates: [URL] = []
        if let bundle = Bundle.allBundles.first(where: { $0.bundlePath.hasSuffix(".xctest") }) {
            candidates.append(bundle.bundleURL.deletingLastPathComponent())
        }
        let argv0 = URL(fileURLWithPath: CommandLine.arguments[0]).resolvingSymlinksInPath()
        candidates.append(argv0.deletingLastPathComponent())
        // macOS: …/lgapPackageTests.xctest/Contents/MacOS/lgapPackageTests
        if argv0.path.contains(".xctest/") {
            var u = argv0
            while !u.path.hasSuffix(".xctest") && u.path != "/" { u = u.deletingLastPathComponent() }
            candidates.append(u.deletingLastPathComponent())
        }
        for dir in candidates {
            let path = dir.appendingPathComponent(name).path
            if FileManager.default.isExecutableFile(atPath: path) { return path }
        }
        throw DaemonError(description: "\(name) not found beside the test bundle (looked in \(candidates.map(\.path))); "
                          + "build it with `swift build -c release --build-tests`")
    }

    // MARK: Starting and stopping

    /// Starts lgapd and waits for its "ready" line. New ports are picked unless `samePorts`; a bind
    /// that fails with "Address already in use" is retried on other ports.
    func start(samePorts: Bool = false, timeout: TimeInterval = 90) throws {
        for attempt in 0..<6 {
            if !samePorts || ingestPort == 0 { (ingestPort, resultsPort) = try Self.freePorts() }
            try launch()
            switch waitForReady(timeout: timeout) {
            case .ready: return
            case .addressInUse where !samePorts && attempt < 5: continue
            case .addressInUse, .exited:
                throw DaemonError(description: "lgapd exited with status \(exitStatus.map(String.init) ?? "?") before it was ready:\n\(log)")
            case .timedOut:
                kill()
                throw DaemonError(description: "lgapd was not ready within \(Int(timeout)) s:\n\(log)")
            }
        }
    }

    /// Runs lgapd to completion with `arguments` (no ports): for configurations it must refuse.
    static func runToExit(arguments: [String], directory: String, timeout: TimeInterval = 60) throws -> (status: Int32, stderr: String) {
        let r = try run("lgapd", arguments: arguments, directory: directory, timeout: timeout)
        return (r.status, r.stdout + r.stderr)
    }

    /// Runs a product (lgapctl, lgapd) to completion; its exit status (negative: the signal that
    /// killed it), stdout and stderr.
    static func run(_ product: String, arguments: [String], directory: String,
                    timeout: TimeInterval = 60) throws -> (status: Int32, stdout: String, stderr: String) {
        let p = Process()
        p.executableURL = URL(fileURLWithPath: try Self.product(product))
        p.arguments = arguments
        p.currentDirectoryURL = URL(fileURLWithPath: directory)
        p.environment = cleanEnvironment([:])
        let tag = UUID().uuidString.prefix(8)
        let outPath = directory + "/\(product)-\(tag).out", errPath = directory + "/\(product)-\(tag).err"
        _ = FileManager.default.createFile(atPath: outPath, contents: nil)
        _ = FileManager.default.createFile(atPath: errPath, contents: nil)
        let out = try FileHandle(forWritingTo: URL(fileURLWithPath: outPath))
        let err = try FileHandle(forWritingTo: URL(fileURLWithPath: errPath))
        p.standardOutput = out
        p.standardError = err
        let done = DispatchSemaphore(value: 0)
        p.terminationHandler = { _ in done.signal() }
        try p.run()
        try? out.close()
        try? err.close()
        guard done.wait(timeout: .now() + timeout) == .success else {
            sendSignal(p.processIdentifier, SIGKILL)
            throw DaemonError(description: "\(product) \(arguments.joined(separator: " ")) still running after \(Int(timeout)) s")
        }
        let read = { (path: String) in (try? String(contentsOfFile: path, encoding: .utf8)) ?? "" }
        return (p.terminationReason == .exit ? p.terminationStatus : -p.terminationStatus, read(outPath), read(errPath))
    }

    private static func cleanEnvironment(_ extra: [String: String]) -> [String: String] {
        var env = ProcessInfo.processInfo.environment
        for k in ["NOTIFY_SOCKET", "WATCHDOG_USEC", "WATCHDOG_PID", "LGAP_PACK", "LGAP_DB"] { env[k] = nil }
        return env.merging(extra) { $1 }
    }

    private func launch() throws {
        launches += 1
        stderrPath = directory + "/stderr-\(launches).log"
        _ = FileManager.default.createFile(atPath: stderrPath, contents: nil)
        let err = try FileHandle(forWritingTo: URL(fileURLWithPath: stderrPath))
        let p = Process()
        p.executableURL = URL(fileURLWithPath: try Self.executable)
        p.arguments = ["--config", configPath, "--db", database, "--ingest", ingestEndpoint, "--results", resultsEndpoint,
                       "--ingest-mode", options.mode, "--pack", options.pack]
        p.currentDirectoryURL = URL(fileURLWithPath: directory)
        p.environment = Self.cleanEnvironment(options.environment)
        p.standardError = err
        p.standardOutput = err
        let exited = DispatchSemaphore(value: 0)
        p.terminationHandler = { _ in exited.signal() }
        self.exited = exited
        try p.run()
        try? err.close()
        process = p
    }

    enum Readiness { case ready, addressInUse, exited, timedOut }

    private func waitForReady(timeout: TimeInterval) -> Readiness {
        let deadline = Date(timeIntervalSinceNow: timeout)
        while Date() < deadline {
            // swift-log's line ends "… [lgapd] ready" ("already in use" must not count).
            if log.contains("] ready") { return .ready }
            if let p = process, !p.isRunning {
                _ = exited.wait(timeout: .now() + 5)
                return log.contains("Address already in use") ? .addressInUse : .exited
            }
            Thread.sleep(forTimeInterval: 0.02)
        }
        return .timedOut
    }

    /// Waits for the process to exit; its exit status (negative: killed by that signal), or nil.
    @discardableResult
    func waitForExit(timeout: TimeInterval) -> Int32? {
        guard process != nil else { return nil }
        guard exited.wait(timeout: .now() + timeout) == .success else { return nil }
        exited.signal()  // later waits return at once
        return exitStatus
    }

    var exitStatus: Int32? {
        guard let p = process, !p.isRunning else { return nil }
        return p.terminationReason == .exit ? p.terminationStatus : -p.terminationStatus
    }

    /// SIGTERM, then waits for the exit; the exit status, or nil if it is still running.
    func terminate(timeout: TimeInterval = 30) -> Int32? {
        signal(SIGTERM)
        return waitForExit(timeout: timeout)
    }

    func signal(_ sig: Int32) {
        guard let p = process, p.isRunning else { return }
        sendSignal(p.processIdentifier, sig)
    }

    /// SIGKILL and wait (no cleanup happens in lgapd: what kill -9 or a power cut leaves).
    func kill() {
        guard let p = process, p.isRunning else { return }
        sendSignal(p.processIdentifier, SIGKILL)
        _ = waitForExit(timeout: 10)
    }

    /// The current launch's stderr.
    var log: String { (try? String(contentsOfFile: stderrPath, encoding: .utf8)) ?? "" }

    /// The last lines of stderr, for failure messages.
    var logTail: String {
        let lines = log.split(separator: "\n", omittingEmptySubsequences: false)
        return "lgapd stderr (\(stderrPath)):\n" + lines.suffix(40).joined(separator: "\n")
    }

    // MARK: Ports

    /// Two TCP ports on 127.0.0.1 that nothing listens on right now.
    static func freePorts() throws -> (Int, Int) {
        for _ in 0..<200 {
            let a = Int.random(in: 20000..<60000)
            let b = a + 1
            if portIsFree(a) && portIsFree(b) { return (a, b) }
        }
        throw DaemonError(description: "no free pair of TCP ports found")
    }

    static func portIsFree(_ port: Int) -> Bool {
        let fd = socket(AF_INET, Int32(SOCK_STREAM.rawValue), 0)
        guard fd >= 0 else { return false }
        defer { close(fd) }
        var addr = sockaddr_in()
        addr.sin_family = sa_family_t(AF_INET)
        addr.sin_port = in_port_t(UInt16(port).bigEndian)
        addr.sin_addr.s_addr = inet_addr("127.0.0.1")
        let rc = withUnsafePointer(to: &addr) {
            $0.withMemoryRebound(to: sockaddr.self, capacity: 1) { bind(fd, $0, socklen_t(MemoryLayout<sockaddr_in>.size)) }
        }
        return rc == 0
    }
}

/// kill(2), out of reach of DaemonProcess.kill().
private func sendSignal(_ pid: pid_t, _ sig: Int32) { _ = kill(pid, sig) }
