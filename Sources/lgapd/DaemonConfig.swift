// lgapd's configuration: Config/lgapd.toml (every key documented there), then command-line flags.
// Unknown keys, wrong types and out-of-range values are errors that name the key; lgapd exits 2.
import Foundation
import TOMLKit

struct ConfigError: Error, CustomStringConvertible {
    let message: String
    var description: String { message }
}

struct DaemonConfig: Sendable {
    // [daemon]
    var pack: String? = nil
    var database = "/var/lib/lgapd/lgapd.sqlite"
    var logLevel = "info"
    var shutdownTimeout: Double = 30
    var statusInterval: Double = 5
    var threads = 2
    // [ingest]
    var ingestEndpoint = "tcp://127.0.0.1:5555"
    var ingestMode = "pull"
    var ingestHighWaterMark = 64
    /// The ingest socket's kernel receive buffer (SO_RCVBUF); 0 keeps the OS default.
    var ingestReceiveBufferBytes = 65536
    var maxMessageBytes = 8 * 1024 * 1024
    var maxHeaderBytes = 16 * 1024
    var maxMetaBytes = 4 * 1024
    // [results]
    var resultsEndpoint = "tcp://127.0.0.1:5556"
    var resultsHighWaterMark = 1000
    // [limits]
    var maxImageSide = 4096
    var maxImagePixels = 16_777_216
    // [pipeline]
    var queueCapacity = 8
    var decodeWorkers = 1
    var captionWorkers = 1
    var purifyWorkers = 1
    var classifyWorkers = 1
    var maxBatch = 8
    var maxWaitMs: Double = 5
    var maxAttempts = 3
    // [purification]
    var strength: Double? = nil
    var steps: Int? = nil
    var guidance: Double? = nil
    var eta: Double? = nil
    var ensemble: Int? = nil
    var seed: UInt64? = nil          // nil: a fresh random seed per job
    // [store]
    var keepPurified = true
    var durability = "full"
    // [security]
    var curve = false
    var serverSecretKeyFile: String? = nil
    var allowedClientsFile: String? = nil

    /// Reads a TOML file over the defaults.
    static func load(path: String) throws -> DaemonConfig {
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
            c.logLevel = try s.string("log_level", oneOf: ["trace", "debug", "info", "notice", "warning", "error"]) ?? c.logLevel
            c.shutdownTimeout = try s.double("shutdown_timeout_s", min: 0) ?? c.shutdownTimeout
            c.statusInterval = try s.double("status_interval_s", min: 0.1) ?? c.statusInterval
            c.threads = try s.int("threads", min: 1, max: 256) ?? c.threads
        }
        try r.section("ingest") { s in
            c.ingestEndpoint = try s.string("endpoint") ?? c.ingestEndpoint
            c.ingestMode = try s.string("mode", oneOf: ["pull", "router"]) ?? c.ingestMode
            c.ingestHighWaterMark = try s.int("high_water_mark", min: 1) ?? c.ingestHighWaterMark
            c.ingestReceiveBufferBytes = try s.int("receive_buffer_bytes", min: 0) ?? c.ingestReceiveBufferBytes
            c.maxMessageBytes = try s.int("max_message_bytes", min: 1024) ?? c.maxMessageBytes
            c.maxHeaderBytes = try s.int("max_header_bytes", min: 64) ?? c.maxHeaderBytes
            c.maxMetaBytes = try s.int("max_meta_bytes", min: 0) ?? c.maxMetaBytes
        }
        try r.section("results") { s in
            c.resultsEndpoint = try s.string("endpoint") ?? c.resultsEndpoint
            c.resultsHighWaterMark = try s.int("high_water_mark", min: 1) ?? c.resultsHighWaterMark
        }
        try r.section("limits") { s in
            c.maxImageSide = try s.int("max_image_side", min: 1) ?? c.maxImageSide
            c.maxImagePixels = try s.int("max_image_pixels", min: 1) ?? c.maxImagePixels
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
            c.durability = try s.string("durability", oneOf: ["full", "normal"]) ?? c.durability
        }
        try r.section("security") { s in
            c.curve = try s.bool("curve") ?? c.curve
            c.serverSecretKeyFile = try s.string("server_secret_key_file") ?? c.serverSecretKeyFile
            c.allowedClientsFile = try s.string("allowed_clients_file") ?? c.allowedClientsFile
        }
        try r.finish()
        return c
    }

    func validate() throws {
        if curve && (serverSecretKeyFile == nil || allowedClientsFile == nil) {
            throw ConfigError(message: "[security] curve = true needs server_secret_key_file and allowed_clients_file")
        }
        for (name, e) in [("ingest.endpoint", ingestEndpoint), ("results.endpoint", resultsEndpoint)] {
            guard e.hasPrefix("tcp://") || e.hasPrefix("ipc://") || e.hasPrefix("inproc://") else {
                throw ConfigError(message: "\(name) '\(e)' must be a tcp://, ipc:// or inproc:// endpoint")
            }
        }
    }

    /// The effective configuration as JSON (stored with each run's provenance).
    var snapshot: String {
        var d: [String: Any] = [
            "daemon": ["pack": pack ?? "", "database": database, "log_level": logLevel, "shutdown_timeout_s": shutdownTimeout,
                       "status_interval_s": statusInterval, "threads": threads],
            "ingest": ["endpoint": ingestEndpoint, "mode": ingestMode, "high_water_mark": ingestHighWaterMark,
                       "receive_buffer_bytes": ingestReceiveBufferBytes,
                       "max_message_bytes": maxMessageBytes, "max_header_bytes": maxHeaderBytes, "max_meta_bytes": maxMetaBytes],
            "results": ["endpoint": resultsEndpoint, "high_water_mark": resultsHighWaterMark],
            "limits": ["max_image_side": maxImageSide, "max_image_pixels": maxImagePixels],
            "pipeline": ["queue_capacity": queueCapacity, "decode_workers": decodeWorkers, "caption_workers": captionWorkers,
                         "purify_workers": purifyWorkers, "classify_workers": classifyWorkers, "max_batch": maxBatch, "max_wait_ms": maxWaitMs,
                         "max_attempts": maxAttempts],
            "store": ["keep_purified": keepPurified, "durability": durability],
            "security": ["curve": curve],
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

/// Reads typed keys out of TOML sections and remembers which it saw, so unknown keys are reported.
struct TOMLReader {
    let table: TOMLTable
    let path: String
    var seenSections: Set<String> = []

    init(table: TOMLTable, path: String) {
        self.table = table
        self.path = path
    }

    struct Section {
        let table: TOMLTable?
        let name: String
        let path: String
        var seen: Set<String> = []

        func fail(_ key: String, _ m: String) -> ConfigError { ConfigError(message: "\(path): [\(name)] \(key) \(m)") }

        mutating func value(_ key: String) -> TOMLValueConvertible? {
            seen.insert(key)
            return table?[key]
        }

        mutating func string(_ key: String, oneOf allowed: [String]? = nil) throws -> String? {
            guard let v = value(key) else { return nil }
            guard let s = v.string else {
                if key == "seed" { return nil }
                throw fail(key, "must be a string")
            }
            if let allowed, !allowed.contains(s) { throw fail(key, "must be one of \(allowed.joined(separator: ", ")), got '\(s)'") }
            return s
        }

        mutating func int(_ key: String, min lo: Int? = nil, max hi: Int? = nil) throws -> Int? {
            guard let v = value(key) else { return nil }
            guard let i = v.int else { throw fail(key, "must be an integer") }
            if let lo, i < lo { throw fail(key, "must be ≥ \(lo), got \(i)") }
            if let hi, i > hi { throw fail(key, "must be ≤ \(hi), got \(i)") }
            return i
        }

        mutating func double(_ key: String, min lo: Double? = nil) throws -> Double? {
            guard let v = value(key) else { return nil }
            guard let d = v.double ?? v.int.map(Double.init) else { throw fail(key, "must be a number") }
            guard d.isFinite else { throw fail(key, "must be finite") }
            if let lo, d < lo { throw fail(key, "must be ≥ \(lo), got \(d)") }
            return d
        }

        mutating func bool(_ key: String) throws -> Bool? {
            guard let v = value(key) else { return nil }
            guard let b = v.bool else { throw fail(key, "must be true or false") }
            return b
        }
    }

    mutating func section(_ name: String, _ body: (inout Section) throws -> Void) throws {
        seenSections.insert(name)
        let t = table[name]
        if t != nil && t?.table == nil { throw ConfigError(message: "\(path): [\(name)] must be a table") }
        var s = Section(table: t?.table, name: name, path: path)
        try body(&s)
        if let keys = t?.table?.keys {
            for k in keys where !s.seen.contains(k) { throw ConfigError(message: "\(path): unknown key '\(k)' in [\(name)]") }
        }
    }

    func finish() throws {
        for k in table.keys where !seenSections.contains(k) { throw ConfigError(message: "\(path): unknown section or key '\(k)'") }
    }
}
