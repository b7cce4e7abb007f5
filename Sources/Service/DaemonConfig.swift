// lgapd's configuration: Config/lgapd.toml (every key documented there), then command-line flags.
// Unknown keys, wrong types and out-of-range values are errors that name the key; lgapd exits 2.
import Foundation
import JobModel
import Locations
import Messaging
import Provenance
import TOMLKit

public struct ConfigError: Error, CustomStringConvertible {
    public let message: String
    public init(message: String) { self.message = message }
    public var description: String { message }
}

public enum LogFormat: String, Sendable, CaseIterable { case text, json }

public struct DaemonConfig: Sendable {
    // [daemon]
    public var pack: String? = nil
    public var database = "/var/lib/lgapd/lgapd.sqlite"
    /// This node's name in the store (fleet-wide unique); default: the host name.
    public var node: String = DaemonConfig.defaultNode
    /// Where the crash journal lives; default: the SQLite database's folder, /var/lib/lgapd for PostgreSQL.
    public var stateDirectory: String? = nil
    /// PostgreSQL password file (first line), when the URL has none and PGPASSWORD is unset.
    public var passwordFile: String? = nil
    public var logLevel = "info"
    public var logFormat = LogFormat.text
    public var shutdownTimeout: Double = 30
    public var statusInterval: Double = 5
    public var threads = 2
    /// Fleet: a node whose heartbeat is older than this loses its unfinished jobs to the survivors.
    public var lease: Double = 15
    public var heartbeatInterval: Double = 2
    // [ingest]
    public var ingestEndpoint = "tcp://127.0.0.1:5555"
    public var ingestMode = IngestMode.pull
    /// Connect to a producer- or proxy-bound endpoint instead of binding (PULL→PUSH, ROUTER→DEALER).
    public var ingestConnect = false
    /// Messages libzmq buffers per connection. With max_connections and max_message_bytes it bounds what
    /// producers can make lgapd hold (docs/OPERATIONS.md, "Memory"): at the defaults
    /// 32 × (8 + 1) × (8 MiB + 64 KiB) ≈ 2.3 GiB, which keeps the whole bound under the unit's MemoryMax.
    public var ingestHighWaterMark = 8
    /// The ingest socket's kernel receive buffer (SO_RCVBUF); 0 keeps the OS default.
    public var ingestReceiveBufferBytes = 65536
    public var maxConnections = 32
    /// SIGTERM in pull mode: at most this long to read and commit what is already on the wire (not cut
    /// short by shutdown_timeout_s, which bounds processing).
    public var drainTimeout: Double = 5
    /// Accepted jobs waiting for the pipeline before intake pauses (backpressure on producers).
    public var maxBacklog = 64
    public var maxMessageBytes = 8 * 1024 * 1024
    public var maxHeaderBytes = 16 * 1024
    public var maxMetaBytes = 4 * 1024
    // [results]
    public var resultsEndpoint = "tcp://127.0.0.1:5556"
    public var resultsConnect = false
    public var resultsHighWaterMark = 1000
    // [limits]
    public var maxImageSide = 4096
    public var maxImagePixels = 16_777_216
    /// Most pixel-steps one job may cost (see CostModel); larger jobs are refused (too_expensive).
    public var maxJobCost: Int64 = 200_000_000
    /// Most bytes the jobs inside the pipeline may hold together (decoded images and their copies).
    public var maxInflightBytes: Int64 = 1 << 30
    // [pipeline]
    public var queueCapacity = 8
    public var decodeWorkers = 1
    public var captionWorkers = 1
    public var purifyWorkers = 1
    public var classifyWorkers = 1
    public var maxBatch = 8
    public var maxWaitMs: Double = 5
    public var maxAttempts = 3
    // [purification]
    public var strength: Double? = nil
    public var steps: Int? = nil
    public var guidance: Double? = nil
    public var eta: Double? = nil
    public var ensemble: Int? = nil
    public var seed: UInt64? = nil  // nil: a fresh random seed per job
    // [store]
    public var keepPurified = true
    public var durability = SQLiteJobStore.Durability.full
    /// Retention (0: keep forever): done and failed jobs deleted this many days after they finished;
    /// rejected jobs and refusals at the door after retain_rejected_days; keep_inputs = false drops a
    /// finished job's input image at once (its SHA-256 stays).
    public var retainDays: Double = 0
    public var retainRejectedDays: Double = 0
    public var keepInputs = true
    public var retentionInterval: Double = 60
    // [security]
    public var curve = false
    public var serverSecretKeyFile: String? = nil
    public var allowedClientsFile: String? = nil
    /// Allow binding beyond loopback without CURVE (plaintext, unauthenticated producers).
    public var allowPlaintextRemote = false
    // [metrics]
    public var metricsEndpoint: String? = nil

    public init() {}

    /// The host name, cut to a valid node name.
    public static var defaultNode: String {
        let cleaned = String(
            ProcessInfo.processInfo.hostName.unicodeScalars.map { u -> Character in
                (u.isASCII && (CharacterSet.alphanumerics.contains(u) || "._-".unicodeScalars.contains(u))) ? Character(u) : "-"
            }.prefix(64))
        return cleaned.isEmpty ? "lgapd" : cleaned
    }

    /// Reads a TOML file over the defaults.
    public static func load(path: String) throws -> DaemonConfig {
        guard let text = try? String(contentsOfFile: path, encoding: .utf8) else {
            throw ConfigError(message: "\(path): cannot read the configuration file")
        }
        let table: TOMLTable
        do { table = try TOMLTable(string: text) } catch let e as TOMLParseError {
            throw ConfigError(message: "\(path): \(e.description) at line \(e.source.begin.line)")
        }
        var c = DaemonConfig()
        var r = TOMLReader(table: table, path: path)
        try r.section("daemon") { s in
            c.pack = try s.string("pack") ?? c.pack
            c.database = try s.string("database") ?? c.database
            c.node = try s.string("node") ?? c.node
            c.stateDirectory = try s.string("state_dir") ?? c.stateDirectory
            c.passwordFile = try s.string("password_file") ?? c.passwordFile
            c.logLevel = try s.string("log_level", oneOf: ["trace", "debug", "info", "notice", "warning", "error"]) ?? c.logLevel
            c.logFormat = try s.string("log_format", oneOf: LogFormat.allCases.map(\.rawValue)).flatMap(LogFormat.init) ?? c.logFormat
            c.shutdownTimeout = try s.double("shutdown_timeout_s", min: 0) ?? c.shutdownTimeout
            c.statusInterval = try s.double("status_interval_s", min: 0.1) ?? c.statusInterval
            c.threads = try s.int("threads", min: 1, max: 256) ?? c.threads
            c.lease = try s.double("lease_s", min: 1) ?? c.lease
            c.heartbeatInterval = try s.double("heartbeat_s", min: 0.1) ?? c.heartbeatInterval
        }
        try r.section("ingest") { s in
            c.ingestEndpoint = try s.string("endpoint") ?? c.ingestEndpoint
            c.ingestMode = try s.string("mode", oneOf: ["pull", "router"]).flatMap(IngestMode.init) ?? c.ingestMode
            c.ingestConnect = try s.bool("connect") ?? c.ingestConnect
            c.ingestHighWaterMark = try s.int("high_water_mark", min: 1, max: 1_000_000) ?? c.ingestHighWaterMark
            c.ingestReceiveBufferBytes = try s.int("receive_buffer_bytes", min: 0, max: 1 << 30) ?? c.ingestReceiveBufferBytes
            c.maxConnections = try s.int("max_connections", min: 1, max: 100_000) ?? c.maxConnections
            c.maxBacklog = try s.int("max_backlog", min: 1, max: 10_000_000) ?? c.maxBacklog
            c.drainTimeout = try s.double("drain_timeout_s", min: 0.1) ?? c.drainTimeout
            c.maxMessageBytes = try s.int("max_message_bytes", min: 1024, max: 1 << 30) ?? c.maxMessageBytes
            c.maxHeaderBytes = try s.int("max_header_bytes", min: 64, max: 1 << 24) ?? c.maxHeaderBytes
            c.maxMetaBytes = try s.int("max_meta_bytes", min: 0, max: 1 << 24) ?? c.maxMetaBytes
        }
        try r.section("results") { s in
            c.resultsEndpoint = try s.string("endpoint") ?? c.resultsEndpoint
            c.resultsConnect = try s.bool("connect") ?? c.resultsConnect
            c.resultsHighWaterMark = try s.int("high_water_mark", min: 1, max: 10_000_000) ?? c.resultsHighWaterMark
        }
        try r.section("limits") { s in
            c.maxImageSide = try s.int("max_image_side", min: 1, max: 65535) ?? c.maxImageSide
            c.maxImagePixels = try s.int("max_image_pixels", min: 1, max: 1 << 31) ?? c.maxImagePixels
            c.maxJobCost = try s.int("max_job_cost", min: 1).map(Int64.init) ?? c.maxJobCost
            c.maxInflightBytes = try s.int("max_inflight_bytes", min: 1 << 20).map(Int64.init) ?? c.maxInflightBytes
        }
        try r.section("pipeline") { s in
            c.queueCapacity = try s.int("queue_capacity", min: 1, max: 100_000) ?? c.queueCapacity
            c.decodeWorkers = try s.int("decode_workers", min: 1, max: 64) ?? c.decodeWorkers
            c.captionWorkers = try s.int("caption_workers", min: 1, max: 64) ?? c.captionWorkers
            c.purifyWorkers = try s.int("purify_workers", min: 1, max: 64) ?? c.purifyWorkers
            c.classifyWorkers = try s.int("classify_workers", min: 1, max: 64) ?? c.classifyWorkers
            c.maxBatch = try s.int("max_batch", min: 1, max: 1024) ?? c.maxBatch
            c.maxWaitMs = try s.double("max_wait_ms", min: 0) ?? c.maxWaitMs
            c.maxAttempts = try s.int("max_attempts", min: 1, max: 100) ?? c.maxAttempts
        }
        try r.section("purification") { s in
            c.strength = try s.double("strength", min: 0) ?? c.strength
            c.steps = try s.int("steps", min: 1, max: 1000) ?? c.steps
            c.guidance = try s.double("guidance", min: 0) ?? c.guidance
            c.eta = try s.double("eta", min: 0) ?? c.eta
            c.ensemble = try s.int("ensemble", min: 1, max: 16) ?? c.ensemble
            if let seed = try s.string("seed") {
                guard seed == "random" else { throw ConfigError(message: "\(path): [purification] seed must be \"random\" or an integer") }
            } else if let seed = try s.int("seed", min: 0) {
                c.seed = UInt64(seed)
            }
        }
        try r.section("store") { s in
            c.keepPurified = try s.bool("keep_purified") ?? c.keepPurified
            c.durability = try s.string("durability", oneOf: ["full", "normal"]).flatMap(SQLiteJobStore.Durability.init) ?? c.durability
            c.retainDays = try s.double("retain_days", min: 0) ?? c.retainDays
            c.retainRejectedDays = try s.double("retain_rejected_days", min: 0) ?? c.retainRejectedDays
            c.keepInputs = try s.bool("keep_inputs") ?? c.keepInputs
            c.retentionInterval = try s.double("retention_interval_s", min: 0.1) ?? c.retentionInterval
        }
        try r.section("security") { s in
            c.curve = try s.bool("curve") ?? c.curve
            c.serverSecretKeyFile = try s.string("server_secret_key_file") ?? c.serverSecretKeyFile
            c.allowedClientsFile = try s.string("allowed_clients_file") ?? c.allowedClientsFile
            c.allowPlaintextRemote = try s.bool("allow_plaintext_remote") ?? c.allowPlaintextRemote
        }
        try r.section("metrics") { s in
            c.metricsEndpoint = try s.string("endpoint") ?? c.metricsEndpoint
        }
        try r.finish()
        return c
    }

    /// Checks what single keys cannot: combinations, endpoints, and binding beyond loopback.
    public func validate() throws {
        if curve && (serverSecretKeyFile == nil || allowedClientsFile == nil) {
            throw ConfigError(message: "[security] curve = true needs server_secret_key_file and allowed_clients_file")
        }
        guard Identifiers.isValidNodeName(node) else {
            throw ConfigError(message: "[daemon] node '\(Sanitize.text(node))' must be 1–64 characters of A-Z a-z 0-9 . _ -")
        }
        for (name, e, connects) in [("ingest.endpoint", ingestEndpoint, ingestConnect), ("results.endpoint", resultsEndpoint, resultsConnect)] {
            guard e.hasPrefix("tcp://") || e.hasPrefix("ipc://") || e.hasPrefix("inproc://") else {
                throw ConfigError(message: "\(name) '\(e)' must be a tcp://, ipc:// or inproc:// endpoint")
            }
            if !curve && !allowPlaintextRemote && !Self.isLocal(e) {
                throw ConfigError(
                    message: "\(name) '\(e)' \(connects ? "connects" : "binds") beyond loopback without CURVE: "
                        + "producers and subscribers there would be unauthenticated and unencrypted. Enable [security] curve, "
                        + "or set [security] allow_plaintext_remote = true to accept that")
            }
        }
        if durability == .normal, case .postgres = try? StoreLocation(database) {
            throw ConfigError(message: "[store] durability applies to SQLite only (PostgreSQL commits are durable by its own settings)")
        }
        if let m = metricsEndpoint, HostPort(m) == nil {
            throw ConfigError(message: "[metrics] endpoint '\(m)' must be HOST:PORT")
        }
    }

    /// Loopback, a Unix socket or in-process: reachable from this host only.
    static func isLocal(_ endpoint: String) -> Bool {
        if endpoint.hasPrefix("ipc://") || endpoint.hasPrefix("inproc://") { return true }
        var host = String(endpoint.dropFirst("tcp://".count))
        if let i = host.lastIndex(of: ":") { host = String(host[..<i]) }
        if let semi = host.firstIndex(of: ";") { host = String(host[..<semi]) }  // "src;dst" connect form
        host = host.trimmingCharacters(in: CharacterSet(charactersIn: "[]"))
        return host == "localhost" || host == "::1" || host.hasPrefix("127.") || host == "lo"
    }

    /// The effective configuration as JSON (stored with each run's provenance).
    public var snapshot: String {
        var d: [String: Any] = [
            "daemon": [
                "pack": pack ?? "", "database": StoreLocationText.redacted(database), "node": node, "log_level": logLevel,
                "log_format": logFormat.rawValue, "shutdown_timeout_s": shutdownTimeout, "status_interval_s": statusInterval,
                "threads": threads, "lease_s": lease, "heartbeat_s": heartbeatInterval
            ],
            "ingest": [
                "endpoint": ingestEndpoint, "mode": ingestMode.rawValue, "connect": ingestConnect, "high_water_mark": ingestHighWaterMark,
                "receive_buffer_bytes": ingestReceiveBufferBytes, "max_connections": maxConnections, "max_backlog": maxBacklog, "drain_timeout_s": drainTimeout,
                "max_message_bytes": maxMessageBytes, "max_header_bytes": maxHeaderBytes, "max_meta_bytes": maxMetaBytes
            ],
            "results": ["endpoint": resultsEndpoint, "connect": resultsConnect, "high_water_mark": resultsHighWaterMark],
            "limits": [
                "max_image_side": maxImageSide, "max_image_pixels": maxImagePixels, "max_job_cost": maxJobCost,
                "max_inflight_bytes": maxInflightBytes
            ],
            "pipeline": [
                "queue_capacity": queueCapacity, "decode_workers": decodeWorkers, "caption_workers": captionWorkers,
                "purify_workers": purifyWorkers, "classify_workers": classifyWorkers, "max_batch": maxBatch, "max_wait_ms": maxWaitMs,
                "max_attempts": maxAttempts
            ],
            "store": [
                "keep_purified": keepPurified, "durability": durability.rawValue, "retain_days": retainDays,
                "retain_rejected_days": retainRejectedDays, "keep_inputs": keepInputs,
                "retention_interval_s": retentionInterval
            ],
            "security": ["curve": curve, "allow_plaintext_remote": allowPlaintextRemote],
            "metrics": ["endpoint": metricsEndpoint ?? ""]
        ]
        var pur: [String: Any] = ["seed": seed.map { String($0) } ?? "random"]
        if let strength { pur["strength"] = strength }
        if let steps { pur["steps"] = steps }
        if let guidance { pur["guidance"] = guidance }
        if let eta { pur["eta"] = eta }
        if let ensemble { pur["ensemble"] = ensemble }
        d["purification"] = pur
        return String(decoding: (try? JSONSerialization.data(withJSONObject: d, options: [.sortedKeys])) ?? Data(), as: UTF8.self)
    }
}

/// "host:port" for the metrics listener.
public struct HostPort: Sendable, Equatable {
    public var host: String
    public var port: Int
    public init?(_ text: String) {
        guard let i = text.lastIndex(of: ":"), let p = Int(text[text.index(after: i)...]), (0...65535).contains(p) else { return nil }
        host = String(text[..<i]).trimmingCharacters(in: CharacterSet(charactersIn: "[]"))
        port = p
        if host.isEmpty { return nil }
    }
}

enum StoreLocationText {
    /// The database setting without a password, for snapshots and logs.
    static func redacted(_ db: String) -> String { (try? StoreLocation(db).description) ?? db }
}
