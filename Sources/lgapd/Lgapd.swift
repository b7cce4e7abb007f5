// lgapd: the LGAP service. Reads its configuration (--config, else the first of Locations'
// candidates), applies flags, runs the Service library's Daemon until SIGTERM.
// Exit codes: 0 after a clean shutdown, 1 when it cannot start or a part failed, 2 for an invalid
// configuration (or another daemon holding the database).
import ArgumentParser
import Foundation
import JobModel
import Locations
import Logging
import Models
import Provenance
import Service

@main
struct Lgapd: ParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "lgapd",
        abstract: "Language-Guided Adversarial Purification service: ZeroMQ in, purified classifications out, provenance in SQLite or PostgreSQL.",
        version: Daemon.versionText(tool: "lgapd"))

    @Option(help: "TOML configuration file (default: $LGAP_CONFIG, /etc/lgapd/lgapd.toml, ~/.config/lgap/lgapd.toml, the repository's Config/lgapd.toml).")
    var config: String?

    @Option(help: "Ingest endpoint, e.g. tcp://127.0.0.1:5555.")
    var ingest: String?

    @Option(name: .customLong("ingest-mode"), help: "pull (producers PUSH) or router (producers DEALER/REQ, with acks).")
    var ingestMode: String?

    @Option(help: "Results endpoint (XPUB).")
    var results: String?

    @Option(help: "Provenance store: a SQLite path or a postgres://user@host:port/db URL.")
    var db: String?

    @Option(help: "Model pack folder (default: $LGAP_PACK, else models/cifar10-mini).")
    var pack: String?

    @Option(help: "This node's name in the store (default: the host name).")
    var node: String?

    @Option(name: .customLong("log-level"), help: "trace, debug, info, notice, warning or error.")
    var logLevel: String?

    @Option(help: "Serve /metrics, /livez and /readyz on HOST:PORT (default: [metrics] endpoint; unset: none).")
    var metrics: String?

    @Flag(name: .customLong("check-config"), help: "Check the configuration and the pack it names, then exit: 0 when lgapd would start, 2 when not.")
    var checkConfig = false

    func run() throws {
        let cfg: DaemonConfig
        do { cfg = try loadConfig() } catch {
            FileHandle.standardError.write(Data("lgapd: invalid configuration: \(error)\n".utf8))
            throw ExitCode(2)
        }
        if checkConfig { try check(cfg) }
        LogSetup.bootstrap(level: Logger.Level(rawValue: cfg.logLevel) ?? .info, format: cfg.logFormat)
        let log = Logger(label: "lgapd")
        let daemon: Daemon
        do {
            daemon = try Daemon(config: cfg, packFolder: cfg.pack ?? Locations.pack, log: log)
        } catch let e as ConfigError {
            log.critical("invalid configuration", metadata: ["error": "\(e)"])
            throw ExitCode(2)
        } catch let e as InstanceLock.Held {
            log.critical("refusing to start", metadata: ["error": "\(e)"])
            throw ExitCode(2)
        } catch {
            log.critical("cannot start", metadata: ["error": "\(error)"])
            throw ExitCode(1)
        }
        let code = daemon.run(reload: { reloadLogLevel(log) })
        if code != 0 { throw ExitCode(code) }
    }

    var configPath: String? { config ?? Locations.config }

    /// --check-config: what lgapd checks before it touches sockets or the store, then exit.
    func check(_ cfg: DaemonConfig) throws -> Never {
        let packFolder = cfg.pack ?? Locations.pack
        do {
            let pack = try Pack(folder: packFolder)
            try Daemon.checkDefaults(pack, cfg)
            let store = try StoreLocation(cfg.database)
            print(
                "configuration ok: \(configPath ?? "built-in defaults"); pack \(pack.manifest.name) \(pack.manifest.version) at \(packFolder); "
                    + "store \(store)")
        } catch {
            FileHandle.standardError.write(Data("lgapd: invalid configuration: \(error)\n".utf8))
            throw ExitCode(2)
        }
        throw ExitCode(0)
    }

    func loadConfig() throws -> DaemonConfig {
        var c = try configPath.map { try DaemonConfig.load(path: $0) } ?? DaemonConfig()
        if let ingest { c.ingestEndpoint = ingest }
        if let ingestMode {
            guard let m = IngestMode(rawValue: ingestMode), m != .replay else { throw ConfigError(message: "--ingest-mode must be pull or router") }
            c.ingestMode = m
        }
        if let results { c.resultsEndpoint = results }
        if let db = db ?? Locations.databaseOverride { c.database = db }
        if let pack { c.pack = pack }
        if let node { c.node = node }
        if let metrics { c.metricsEndpoint = metrics }
        if let logLevel {
            guard Logger.Level(rawValue: logLevel) != nil else { throw ConfigError(message: "--log-level \(logLevel) is not a log level") }
            c.logLevel = logLevel
        }
        try c.validate()
        return c
    }

    /// SIGHUP: the configuration file's log_level (flags still win); a bad file changes nothing.
    func reloadLogLevel(_ log: Logger) {
        do {
            let level = try logLevel ?? (configPath.map { try DaemonConfig.load(path: $0).logLevel } ?? "info")
            guard let l = Logger.Level(rawValue: level) else { return }
            LogSetup.setLevel(l)
            log.notice("log level set", metadata: ["level": "\(level)"])
        } catch {
            log.warning("SIGHUP: configuration not reloaded", metadata: ["error": "\(error)"])
        }
    }
}
