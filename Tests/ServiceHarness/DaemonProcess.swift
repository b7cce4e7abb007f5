// A real lgapd child process on loopback: free ports, a TOML config of the caller's own, stderr captured
// to a file (quoted in failure messages), readiness from its READY=1 notification (the systemd
// protocol) or its "ready" log line, SIGTERM / SIGKILL, its RSS. Shared by IntegrationTests and
// lgap-stress. lgapd is the binary built beside the running program (`swift build --build-tests`).
import Foundation
#if canImport(Glibc)
    import Glibc
#endif

public struct DaemonError: Error, CustomStringConvertible {
    public let description: String
    public init(description: String) { self.description = description }
}

public final class DaemonProcess: @unchecked Sendable {
    public struct Options {
        public var mode = "pull"
        public var pack: String
        /// TOML keys per section ("daemon", "ingest", "pipeline", "limits", …) over the harness defaults;
        /// values are TOML literals (strings quoted).
        public var sections: [String: [String: String]] = [:]
        public var environment: [String: String] = [:]
        /// A config file to use as is instead of the one written from `sections`.
        public var configFile: String? = nil
        /// The store (default: db.sqlite in the daemon's directory); a postgres:// URL for fleet tests.
        public var database: String? = nil
        /// Wrap lgapd: the command and its arguments before lgapd's path (e.g. a sandbox).
        public var wrapper: [String] = []
        /// Fixed ports (0: pick free ones).
        public var ingestPort = 0
        public var resultsPort = 0

        public init(mode: String = "pull", pack: String, sections: [String: [String: String]] = [:]) {
            self.mode = mode
            self.pack = pack
            self.sections = sections
        }

        public var daemon: [String: String] {
            get { sections["daemon"] ?? [:] }
            set { sections["daemon"] = newValue }
        }
        public var ingest: [String: String] {
            get { sections["ingest"] ?? [:] }
            set { sections["ingest"] = newValue }
        }
        public var pipeline: [String: String] {
            get { sections["pipeline"] ?? [:] }
            set { sections["pipeline"] = newValue }
        }
    }

    public let options: Options
    public let directory: String
    public let database: String
    public let configPath: String
    public private(set) var ingestPort = 0
    public private(set) var resultsPort = 0
    public private(set) var launches = 0
    private var process: Process?
    private var exited = DispatchSemaphore(value: 0)
    public private(set) var stderrPath = ""

    public var ingestEndpoint: String { "tcp://127.0.0.1:\(ingestPort)" }
    public var resultsEndpoint: String { "tcp://127.0.0.1:\(resultsPort)" }
    public var pid: Int32 { process?.processIdentifier ?? 0 }
    public var isRunning: Bool { process?.isRunning ?? false }

    /// The lgapd binary (default: the one built beside the running program).
    let executablePath: String?

    /// `directory` holds the database, the config and the stderr logs; `executable` another lgapd build.
    public init(directory: String, options: Options, executable: String? = nil) throws {
        self.options = options
        executablePath = executable
        self.directory = directory
        database = options.database ?? directory + "/db.sqlite"
        configPath = options.configFile ?? directory + "/lgapd.toml"
        ingestPort = options.ingestPort
        resultsPort = options.resultsPort
        try FileManager.default.createDirectory(atPath: directory, withIntermediateDirectories: true)
        if options.configFile == nil { try Self.configText(options).write(toFile: configPath, atomically: true, encoding: .utf8) }
    }

    /// The node name test daemons run as (unless a test sets its own).
    public static let defaultNode = "test-node"

    /// One engine thread (tests share 2 cores with other work); STATUS= every second.
    static let defaults: [String: [String: String]] = [
        "daemon": [
            "log_level": "\"info\"", "shutdown_timeout_s": "20", "status_interval_s": "1", "threads": "1",
            "node": "\"\(defaultNode)\""
        ],
        "pipeline": ["max_wait_ms": "2"]
    ]

    public static func configText(_ o: Options) -> String {
        let names = Set(defaults.keys).union(o.sections.keys).sorted()
        return names.map { name in
            let merged = (defaults[name] ?? [:]).merging(o.sections[name] ?? [:]) { $1 }
            // An empty value removes a default key (a build that does not know it).
            return "[\(name)]\n"
                + merged.filter { !$0.value.isEmpty }.sorted { $0.key < $1.key }.map { "\($0.key) = \($0.value)" }
                .joined(separator: "\n") + "\n"
        }.joined()
    }

    // MARK: Locating lgapd

    /// lgapd from the products directory of the running program.
    public static var executable: String { get throws { try product("lgapd") } }

    /// An executable product (lgapd, lgapctl) built beside the running test bundle or program.
    public static func product(_ name: String) throws -> String {
        var candidates: [URL] = []
        if let bundle = Bundle.allBundles.first(where: { $0.bundlePath.hasSuffix(".xctest") }) {
            candidates.append(bundle.bundleURL.deletingLastPathComponent())
        }
        let argv0 = URL(fileURLWithPath: CommandLine.arguments[0]).resolvingSymlinksInPath()
        candidates.append(argv0.deletingLastPathComponent())
        for dir in candidates {
            let path = dir.appendingPathComponent(name).path
            if FileManager.default.isExecutableFile(atPath: path) { return path }
        }
        throw DaemonError(
            description: "\(name) not found beside the running program (looked in \(candidates.map(\.path))); "
                + "build it with `swift build -c release --build-tests`")
    }

    // MARK: Starting and stopping

    /// Starts lgapd and waits until it is ready (READY=1 on its notify socket). New ports are picked
    /// unless `samePorts` (or fixed in the options); a bind that fails with "Address already in use"
    /// is retried on other ports.
    public func start(samePorts: Bool = false, timeout: TimeInterval = 90) throws {
        for attempt in 0..<6 {
            if (!samePorts && options.ingestPort == 0) || ingestPort == 0 { (ingestPort, resultsPort) = try Self.freePorts() }
            // A test that reads the notify socket itself: readiness from the log line instead.
            let own = options.environment["NOTIFY_SOCKET"] == nil
            let notify = own ? try NotifySocket(path: directory + "/notify-\(launches + 1).sock") : nil
            try launch(notifySocket: notify?.path)
            switch waitForReady(notify, timeout: timeout) {
            case .ready: return
            case .addressInUse where !samePorts && options.ingestPort == 0 && attempt < 5: continue
            case .addressInUse, .exited:
                throw DaemonError(description: "lgapd exited with status \(exitStatus.map(String.init) ?? "?") before it was ready:\n\(log)")
            case .timedOut:
                kill()
                throw DaemonError(description: "lgapd was not ready within \(Int(timeout)) s:\n\(log)")
            }
        }
    }

    /// Runs lgapd to completion with `arguments` (no ports): for configurations it must refuse.
    public static func runToExit(arguments: [String], directory: String, timeout: TimeInterval = 60) throws -> (status: Int32, stderr: String) {
        let r = try run("lgapd", arguments: arguments, directory: directory, timeout: timeout)
        return (r.status, r.stdout + r.stderr)
    }

    /// Runs a product (lgapctl, lgapd) to completion; its exit status (negative: the signal that
    /// killed it), stdout and stderr.
    public static func run(
        _ product: String, arguments: [String], directory: String, environment: [String: String] = [:],
        timeout: TimeInterval = 60
    ) throws -> (status: Int32, stdout: String, stderr: String) {
        let p = Process()
        p.executableURL = URL(fileURLWithPath: try Self.product(product))
        p.arguments = arguments
        p.currentDirectoryURL = URL(fileURLWithPath: directory)
        p.environment = cleanEnvironment(environment)
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

    /// Runs any program to completion; its stdout (throws when it fails).
    public static func runTool(_ path: String, _ arguments: [String]) throws -> String {
        let p = Process()
        p.executableURL = URL(fileURLWithPath: path)
        p.arguments = arguments
        let pipe = Pipe()
        p.standardOutput = pipe
        p.standardError = FileHandle.nullDevice
        try p.run()
        let data = pipe.fileHandleForReading.readDataToEndOfFile()
        p.waitUntilExit()
        guard p.terminationStatus == 0 else { throw DaemonError(description: "\(path) \(arguments.joined(separator: " ")) exited \(p.terminationStatus)") }
        return String(decoding: data, as: UTF8.self)
    }

    private static func cleanEnvironment(_ extra: [String: String]) -> [String: String] {
        var env = ProcessInfo.processInfo.environment
        for k in ["NOTIFY_SOCKET", "WATCHDOG_USEC", "WATCHDOG_PID", "LGAP_PACK", "LGAP_DB", "LGAP_CONFIG"] { env[k] = nil }
        return env.merging(extra) { $1 }
    }

    /// The arguments lgapd runs with.
    public var arguments: [String] {
        [
            "--config", configPath, "--db", database, "--ingest", ingestEndpoint, "--results", resultsEndpoint,
            "--ingest-mode", options.mode, "--pack", options.pack
        ]
    }

    private func launch(notifySocket: String?) throws {
        launches += 1
        stderrPath = directory + "/stderr-\(launches).log"
        _ = FileManager.default.createFile(atPath: stderrPath, contents: nil)
        let err = try FileHandle(forWritingTo: URL(fileURLWithPath: stderrPath))
        let p = Process()
        let lgapd = try executablePath ?? Self.executable
        if let wrapper = options.wrapper.first {
            p.executableURL = URL(fileURLWithPath: wrapper)
            p.arguments = Array(options.wrapper.dropFirst()) + [lgapd] + arguments
        } else {
            p.executableURL = URL(fileURLWithPath: lgapd)
            p.arguments = arguments
        }
        p.currentDirectoryURL = URL(fileURLWithPath: directory)
        p.environment = Self.cleanEnvironment(options.environment.merging(notifySocket.map { ["NOTIFY_SOCKET": $0] } ?? [:]) { $1 })
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

    private func waitForReady(_ notify: NotifySocket?, timeout: TimeInterval) -> Readiness {
        let deadline = Date(timeIntervalSinceNow: timeout)
        while Date() < deadline {
            if let notify {
                if let m = notify.receive(timeout: 0.02), m.split(separator: "\n").contains("READY=1") { return .ready }
            } else {
                // The log line ends "… [Service] ready" ("already in use" must not count).
                if log.contains("] ready") { return .ready }
                Thread.sleep(forTimeInterval: 0.02)
            }
            if let p = process, !p.isRunning {
                _ = exited.wait(timeout: .now() + 5)
                return log.contains("Address already in use") ? .addressInUse : .exited
            }
        }
        return .timedOut
    }

    /// Waits for the process to exit; its exit status (negative: killed by that signal), or nil.
    @discardableResult
    public func waitForExit(timeout: TimeInterval) -> Int32? {
        guard process != nil else { return nil }
        guard exited.wait(timeout: .now() + timeout) == .success else { return nil }
        exited.signal()  // later waits return at once
        return exitStatus
    }

    public var exitStatus: Int32? {
        guard let p = process, !p.isRunning else { return nil }
        return p.terminationReason == .exit ? p.terminationStatus : -p.terminationStatus
    }

    /// SIGTERM, then waits for the exit; the exit status, or nil if it is still running.
    public func terminate(timeout: TimeInterval = 30) -> Int32? {
        signal(SIGTERM)
        return waitForExit(timeout: timeout)
    }

    public func signal(_ sig: Int32) {
        guard let p = process, p.isRunning else { return }
        sendSignal(p.processIdentifier, sig)
    }

    /// SIGKILL and wait (no cleanup happens in lgapd: what kill -9 or a power cut leaves).
    public func kill() {
        guard let p = process, p.isRunning else { return }
        sendSignal(p.processIdentifier, SIGKILL)
        _ = waitForExit(timeout: 10)
    }

    /// The current launch's stderr.
    public var log: String { (try? String(contentsOfFile: stderrPath, encoding: .utf8)) ?? "" }

    /// The last lines of stderr, for failure messages.
    public var logTail: String {
        let lines = log.split(separator: "\n", omittingEmptySubsequences: false)
        return "lgapd stderr (\(stderrPath)):\n" + lines.suffix(40).joined(separator: "\n")
    }

    /// Resident set size in KiB (VmRSS), and its peak (VmHWM).
    public var memoryKiB: (rss: Int, peak: Int)? {
        guard isRunning, let text = try? String(contentsOfFile: "/proc/\(pid)/status", encoding: .utf8) else { return nil }
        var rss = 0, peak = 0
        for line in text.split(separator: "\n") {
            let parts = line.split(whereSeparator: { $0 == " " || $0 == "\t" })
            if line.hasPrefix("VmRSS:"), parts.count > 1 { rss = Int(parts[1]) ?? 0 }
            if line.hasPrefix("VmHWM:"), parts.count > 1 { peak = Int(parts[1]) ?? 0 }
        }
        return (rss, peak)
    }

    // MARK: Ports

    /// Two TCP ports on 127.0.0.1 that nothing listens on right now.
    public static func freePorts() throws -> (Int, Int) {
        for _ in 0..<200 {
            let a = Int.random(in: 20000..<60000)
            let b = a + 1
            if portIsFree(a) && portIsFree(b) { return (a, b) }
        }
        throw DaemonError(description: "no free pair of TCP ports found")
    }

    public static func portIsFree(_ port: Int) -> Bool {
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
