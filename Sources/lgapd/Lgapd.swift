// lgapd: the LGAP service. Reads Config/lgapd.toml (or --config), applies flags, runs until SIGTERM.
// Exit codes: 0 after a clean shutdown, 1 when it cannot start, 2 for an invalid configuration.
import ArgumentParser
import Foundation
import Logging
import Models

@main
struct Lgapd: ParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "lgapd",
        abstract: "Language-Guided Adversarial Purification service: ZeroMQ in, purified classifications out, provenance in SQLite.")

    @Option(help: "TOML configuration file (default: /etc/lgapd/lgapd.toml if present, else Config/lgapd.toml).")
    var config: String?

    @Option(help: "Ingest endpoint, e.g. tcp://127.0.0.1:5555.")
    var ingest: String?

    @Option(name: .customLong("ingest-mode"), help: "pull (producers PUSH) or router (producers DEALER/REQ, with acks).")
    var ingestMode: String?

    @Option(help: "Results PUB endpoint.")
    var results: String?

    @Option(help: "SQLite database path.")
    var db: String?

    @Option(help: "Model pack folder (default: models/cifar10-mini).")
    var pack: String?

    @Option(name: .customLong("log-level"), help: "trace, debug, info, notice, warning or error.")
    var logLevel: String?

    func run() throws {
        var cfg: DaemonConfig
        do {
            cfg = try loadConfig()
        } catch {
            FileHandle.standardError.write("lgapd: invalid configuration: \(error)\n".data(using: .utf8)!)
            throw ExitCode(2)
        }
        let level = Logger.Level(rawValue: cfg.logLevel) ?? .info
        LoggingSystem.bootstrap { label in
            var h = StreamLogHandler.standardError(label: label)
            h.logLevel = level
            return h
        }
        let log = Logger(label: "lgapd")
        let packFolder = cfg.pack ?? PackLocator.defaultPack()
        let daemon: Daemon
        do {
            daemon = try Daemon(config: cfg, packFolder: packFolder, log: log)
            try daemon.start()
        } catch let e as ConfigError {
            log.critical("invalid configuration", metadata: ["error": "\(e)"])
            throw ExitCode(2)
        } catch {
            log.critical("cannot start", metadata: ["error": "\(error)"])
            throw ExitCode(1)
        }
        let code = daemon.waitAndShutdown()
        if code != 0 { throw ExitCode(code) }
    }

    func loadConfig() throws -> DaemonConfig {
        let path = config ?? ["/etc/lgapd/lgapd.toml", "Config/lgapd.toml"].first { FileManager.default.fileExists(atPath: $0) }
        var c = try path.map { try DaemonConfig.load(path: $0) } ?? DaemonConfig()
        if let ingest { c.ingestEndpoint = ingest }
        if let ingestMode {
            guard ["pull", "router"].contains(ingestMode) else { throw ConfigError(message: "--ingest-mode must be pull or router") }
            c.ingestMode = ingestMode
        }
        if let results { c.resultsEndpoint = results }
        if let db { c.database = db }
        if let pack { c.pack = pack }
        if let logLevel {
            guard Logger.Level(rawValue: logLevel) != nil else { throw ConfigError(message: "--log-level \(logLevel) is not a log level") }
            c.logLevel = logLevel
        }
        try c.validate()
        return c
    }
}
