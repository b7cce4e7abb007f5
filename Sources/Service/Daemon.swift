// lgapd's parts, wired: the store (with its lock), crash recovery, the pack, the sockets, the run
// record, then the services — monitor, pipeline, feeder, ingest — started in that order and stopped in
// reverse. READY=1 once they run. SIGTERM/SIGINT: STOPPING=1, ingest drains the wire (pull mode),
// the feeder stops claiming, the stages finish what they hold, unfinished jobs go back to the queue,
// the store is checkpointed and closed, exit 0. SIGHUP re-reads log_level.
import Foundation
import ImageIO
import JobModel
import JobProcessing
import BuildInfo
import Locations
import Logging
import Messaging
import Models
import Pipeline
import Provenance
import Tensor

public final class Daemon: @unchecked Sendable {
    /// This build: release and commit ("0.4.0 (git 570cf3c)"), recorded with every run.
    public static let version = BuildInfo.version

    /// What `--version` prints: the build and the pack the tool would load by default.
    public static func versionText(tool: String) -> String {
        let folder = Locations.pack
        let pack = (try? PackManifest.load(folder: folder)).map { "\($0.name) \($0.version) (\(folder))" } ?? "none found (\(folder))"
        return "\(tool) \(version)\ndefault pack: \(pack)"
    }

    let config: DaemonConfig
    let log: Logger
    let state = DaemonState()
    let notifier = SystemdNotifier()
    let store: JobStore
    let gate: StoreGate
    private var lock: InstanceLock?
    public let pack: Pack
    let processor: JobProcessor
    let context: ZMQContext
    let resultsSocket: ZMQSocket
    let auth: Authenticator
    public let runID: Int64
    let group: ServiceGroup
    let pipelineService: PipelineService
    let feeder: Feeder
    let endpoint: String
    /// /metrics, /livez, /readyz when [metrics] endpoint is set.
    public let metricsServer: MetricsServer?
    private var signalSources: [DispatchSourceSignal] = []
    private let shutdownRequested = DispatchSemaphore(value: 0)
    private var reload: (() -> Void)?

    public init(config: DaemonConfig, packFolder: String, log: Logger) throws {
        self.config = config
        self.log = log
        Engine.threads = config.threads
        let node = config.node

        // The pack first: [purification] defaults it cannot run are a configuration error, found
        // before anything touches the store.
        let loadStart = Date()
        pack = try Pack(folder: packFolder)
        try Self.checkDefaults(pack, config)
        let packSeconds = Date().timeIntervalSince(loadStart)

        // The store, one daemon per database (SQLite) or per node name (PostgreSQL).
        let location = try StoreLocation(config.database)
        if case .sqlite(let path) = location {
            let dir = (path as NSString).deletingLastPathComponent
            if !dir.isEmpty { try? FileManager.default.createDirectory(atPath: dir, withIntermediateDirectories: true) }
            lock = try InstanceLock(path: InstanceLock.path(forDatabase: path))
        }
        store = try location.openForDaemon(durability: config.durability, passwordFile: config.passwordFile)
        if let pg = store as? PostgresJobStore { try pg.lockNode(node) }
        gate = StoreGate(store: store, state: state, log: log)

        // Crash recovery: the journal names the stage a crash happened in; its jobs become suspects.
        let journal = Self.stateDirectory(config, location) + "/\(node).crash"
        let verdict = CrashJournal.read(path: journal)
        let recovery = try store.recover(node: node, crashedStage: verdict.crashedStage)
        if recovery.suspects + recovery.requeued > 0 {
            var meta: Logger.Metadata = ["suspects": "\(recovery.suspects)", "requeued": "\(recovery.requeued)"]
            if case .crashed(let stage, let signal) = verdict { meta["stage"] = "\(stage?.rawValue ?? "outside the stages")"; meta["signal"] = "\(signal)" }
            log.warning("the last run died with jobs in flight; suspects will run alone", metadata: meta)
        }
        CrashJournal.clear(path: journal)
        try CrashJournal.install(path: journal)

        // The pack's processor.
        let state = self.state
        processor = JobProcessor(
            pack: pack,
            options: ProcessorOptions(
                limits: ImageLimits(maxSide: config.maxImageSide, maxPixels: config.maxImagePixels), keepPurified: config.keepPurified,
                progress: { state.beat() }))
        log.info(
            "loaded pack",
            metadata: [
                "pack": "\(packFolder)", "stages": "\(processor.stages.map(\.rawValue).joined(separator: ","))",
                "seconds": "\(String(format: "%.2f", packSeconds))"
            ])

        // Sockets.
        context = try ZMQContext()
        auth = try Authenticator(context: context, config: config, log: log)
        let ingestSocket = try ZMQSocket(context, config.ingestMode == .router ? .router : .pull)
        resultsSocket = try ZMQSocket(context, .xpub)
        // The guard watches from before the bind: a producer reconnecting the instant the port opens
        // must not escape it (it could not be half-closed at the next stop).
        let connections = try ConnectionGuard(
            socket: ingestSocket, context: context, connecting: config.ingestConnect,
            maxConnections: config.maxConnections)
        auth.limit(domain: "ingest") { connections.admitsHandshake() }
        try Self.configure(ingest: ingestSocket, results: resultsSocket, config: config, auth: auth)
        endpoint = config.ingestConnect ? config.ingestEndpoint : ingestSocket.lastEndpoint
        connections.setEndpoint(endpoint)
        log.info(
            "listening",
            metadata: [
                "ingest": "\(endpoint)", "mode": "\(config.ingestMode.rawValue)",
                "results": "\(config.resultsConnect ? config.resultsEndpoint : resultsSocket.lastEndpoint)",
                "curve": "\(config.curve)", "node": "\(node)", "store": "\(store.location)"
            ])

        // The run, recorded once the sockets are bound (a start that fails leaves no run).
        let stages = processor.stages
        runID = try store.beginRun(
            RunInfo(
                version: Self.version, node: node, host: ProcessInfo.processInfo.hostName, pid: getpid(),
                config: config.snapshot, pack: packFolder, stages: stages))
        let models = try Self.modelFiles(pack)
        try store.recordModels(models, run: runID)
        if config.metricsEndpoint != nil {
            _ = DaemonMetrics.registry  // bootstraps swift-metrics before any metric is made
            let m = state.metrics
            m.gauge("lgap_build_info", 1, [("version", BuildInfo.release), ("commit", BuildInfo.commit), ("node", node)])
            m.gauge("lgap_pack_info", 1, [("name", pack.manifest.name), ("version", pack.manifest.version)])
            for f in models { m.gauge("lgap_model_info", 1, [("stage", f.stage.rawValue), ("name", f.name), ("sha256", f.sha256)]) }
        }

        // The services.
        let costModel = Self.costModel(pack)
        var feederRef: Feeder?
        let recorder = Recorder(
            gate: gate, node: node, run: runID, stages: stages, socket: resultsSocket, publishNode: true,
            feeder: { feederRef }, state: state, log: log)
        let settings = { (workers: Int) in
            StageSettings(capacity: config.queueCapacity, workers: workers, maxBatch: config.maxBatch, maxWait: config.maxWaitMs / 1000)
        }
        let workers: [StageName: Int] = [
            .decode: config.decodeWorkers, .caption: config.captionWorkers, .purify: config.purifyWorkers,
            .classify: config.classifyWorkers
        ]
        let runner = StageRunner(processor: processor, gate: gate, node: node, state: state, fault: FaultInjection.fromEnvironment())
        if let f = runner.fault { log.warning("fault injection armed (tests only)", metadata: ["crash_in": "\(f.stage.rawValue)", "ids": "\(f.idPrefix)*"]) }
        let specs =
            stages.map { s in StageSpec<JobItem>(name: s.rawValue, settings: settings(workers[s] ?? 1)) { runner.run(s, $0) } }
            + [StageSpec<JobItem>(name: "record", settings: settings(1)) { recorder.record($0) }]
        let pipeline = Pipeline(specs)
        pipelineService = PipelineService(pipeline: pipeline, drainTimeout: config.shutdownTimeout, log: log)
        recorder.stopping = { [pipelineService] in pipelineService.pastDeadline }
        let fleet = { if case .postgres = location { return true } else { return false } }()
        feeder = Feeder(
            gate: gate, node: node, pipeline: pipeline, stages: stages, capacity: config.queueCapacity * specs.count,
            batch: config.maxBatch, budget: config.maxInflightBytes, maxAttempts: config.maxAttempts,
            lease: fleet ? config.lease : nil, costModel: costModel, state: state, log: log)
        feederRef = feeder
        let admission = Admission(limits: Admission.Limits(config), policy: Self.policy(pack, config), costModel: costModel)
        let auth = self.auth
        let ingest = IngestLoop(
            socket: ingestSocket, connections: connections, mode: config.ingestMode, admission: admission, gate: gate,
            feeder: feeder, state: state, log: log, node: node, run: runID, maxBacklog: config.maxBacklog,
            drainTimeout: config.drainTimeout, closeIntake: { auth.close(domain: "ingest") })
        let monitor = Monitor(
            gate: gate, node: node, run: runID, pipeline: pipeline, feeder: feeder, notifier: notifier, state: state, log: log,
            heartbeatInterval: config.heartbeatInterval, statusInterval: config.statusInterval, endpoint: endpoint,
            retention: Retention(config), retentionInterval: config.retentionInterval)
        var services: [Service] = [monitor, pipelineService, feeder, ingest]
        if let m = config.metricsEndpoint.flatMap(HostPort.init) {
            // Stuck: no thread made progress for a minute (or 10 heartbeats) while jobs are in flight.
            let server = MetricsServer(endpoint: m, state: state, liveWindow: max(60, 10 * config.heartbeatInterval)) { [feeder] in
                feeder.inFlightCount
            }
            try server.bind()
            log.info("metrics", metadata: ["endpoint": "http://\(m.host):\(server.boundPort ?? m.port)/metrics"])
            metricsServer = server
            services.insert(server, at: 0)
        } else {
            metricsServer = nil
        }
        group = ServiceGroup(services, log: log)
    }

    // MARK: Wiring helpers

    static func stateDirectory(_ c: DaemonConfig, _ location: StoreLocation) -> String {
        if let d = c.stateDirectory { return d }
        if case .sqlite(let path) = location {
            let dir = (path as NSString).deletingLastPathComponent
            return dir.isEmpty ? "." : dir
        }
        // systemd names the unit's StateDirectory= (lgapd@NAME: /var/lib/lgapd-NAME) in $STATE_DIRECTORY.
        if let d = ProcessInfo.processInfo.environment["STATE_DIRECTORY"]?.split(separator: ":").first { return String(d) }
        return "/var/lib/lgapd"
    }

    static func configure(ingest: ZMQSocket, results: ZMQSocket, config c: DaemonConfig, auth: Authenticator) throws {
        // Linger also decides what happens to messages a peer sent before it disconnected that ingest
        // has not read yet: with 0 libzmq drops them when the connection ends (a producer that sends and
        // closes, or every producer at a drain). Non-zero keeps them until read.
        try ingest.setLinger(milliseconds: 1000)
        try ingest.setReceiveHighWaterMark(Int32(c.ingestHighWaterMark))
        // A small kernel buffer too, so backpressure reaches producers after about high_water_mark
        // jobs instead of after the megabytes TCP autotuning would otherwise queue unseen.
        if c.ingestReceiveBufferBytes > 0 { try ingest.setReceiveBuffer(bytes: Int32(c.ingestReceiveBufferBytes)) }
        // Frames up to 64 KiB over the limits are refused with a recorded reason; beyond that libzmq
        // drops the connection before buffering the frame (this bounds what one connection can hold).
        try ingest.setMaxMessageSize(Int64(max(c.maxMessageBytes, c.maxHeaderBytes) + 65536))
        if c.ingestMode == .router { try ingest.setRouterMandatory(true) }
        // What a peer that does not read (acks, results) can make lgapd hold is its queue
        // (high-water mark) and a small kernel buffer, not the megabytes TCP autotuning would allow —
        // and a full queue is seen soon, counted, and never waited on.
        try ingest.setSendBuffer(bytes: 65536)
        try results.setSendBuffer(bytes: 65536)
        try results.setSendHighWaterMark(Int32(c.resultsHighWaterMark))
        try results.setXPubNoDrop(true)
        try auth.configureServer(ingest, domain: "ingest")
        try auth.configureServer(results, domain: "results")
        if c.ingestConnect { try ingest.connect(c.ingestEndpoint) } else { try ingest.bind(c.ingestEndpoint) }
        if c.resultsConnect { try results.connect(c.resultsEndpoint) } else { try results.bind(c.resultsEndpoint) }
    }

    static func costModel(_ pack: Pack) -> CostModel {
        CostModel(modelPixels: pack.manifest.imageSize.map { $0[0] * $0[1] }, hasPurifier: pack.purifier != nil)
    }

    /// The configuration's [purification] defaults must be ones the pack can run: otherwise every job
    /// that relies on them would be accepted and then rejected.
    public static func checkDefaults(_ pack: Pack, _ c: DaemonConfig) throws {
        let defaults = pack.parameters(strength: c.strength, steps: c.steps, guidance: c.guidance, eta: c.eta, ensemble: c.ensemble, seed: c.seed ?? 0)
        do { try pack.validate(defaults) } catch {
            throw ConfigError(message: "[purification] defaults \(defaults) cannot run on pack \(pack.manifest.name): \(error)")
        }
    }

    static func policy(_ pack: Pack, _ c: DaemonConfig) -> ParameterPolicy {
        ParameterPolicy(
            resolve: { p in
                pack.parameters(
                    strength: p.strength ?? c.strength, steps: p.steps ?? c.steps, guidance: p.guidance ?? c.guidance,
                    eta: p.eta ?? c.eta, ensemble: p.ensemble ?? c.ensemble,
                    seed: p.seed ?? c.seed ?? UInt64.random(in: 0..<(1 << 31)))
            }, validate: { try pack.validate($0) })
    }

    static func modelFiles(_ pack: Pack) throws -> [ModelFile] {
        try pack.modelFiles().map {
            ModelFile(
                stage: StageName(rawValue: $0.stage) ?? .classify, name: $0.name, path: $0.path, sha256: $0.sha256,
                parameters: $0.parameters)
        }
    }

    // MARK: Lifecycle

    /// Runs until SIGTERM/SIGINT (or a service fails); returns the exit code. `reload` is called on SIGHUP.
    public func run(reload: @escaping () -> Void) -> Int32 {
        self.reload = reload
        installSignalHandlers()
        group.start()
        // READY=1 (and /readyz) only once intake really runs: the ingest thread sets the flag when
        // its loop starts, a moment after its thread does.
        let readyBy = Date(timeIntervalSinceNow: 10)
        while !state.ingestRunning && Date() < readyBy { Thread.sleep(forTimeInterval: 0.001) }
        notifier.notify("READY=1\nSTATUS=serving on \(endpoint)\nMAINPID=\(getpid())")
        log.info("ready", metadata: ["run": "\(runID)", "version": "\(Self.version)", "node": "\(config.node)"])
        // Wait for a signal, or for a service that ended on its own (an error).
        let ended = DispatchSemaphore(value: 0)
        let waiters = [shutdownRequested, group.ended]
        for w in waiters {
            Thread {
                w.wait(); ended.signal()
            }.start()
        }
        ended.wait()
        return shutdown()
    }

    private func shutdown() -> Int32 {
        notifier.notify("STOPPING=1")
        state.draining = true
        let deadline = Date(timeIntervalSinceNow: config.shutdownTimeout)
        let stopped = group.stop(deadline: deadline)
        var code: Int32 = group.error == nil ? 0 : 1
        feeder.close()
        do {
            let released = try store.release(node: config.node)
            let reason =
                group.error.map { "service failed: \($0)" }
                ?? (pipelineService.drained ? "sigterm" : "shutdown timeout (\(released) unfinished jobs stay accepted for the next start)")
            try store.endRun(runID, reason: reason)
            // Closing under a stage that is still running would pull the database from under it: a part
            // that did not stop keeps its connection until the process exits a moment later.
            if stopped { try store.close() } else { try store.checkpoint() }
        } catch {
            log.error("cannot close the store cleanly", metadata: ["error": "\(error)"])
            code = 1
        }
        lock?.release()
        log.notice(
            "stopped",
            metadata: [
                "drained": "\(stopped && pipelineService.drained)", "published": "\(state.published.value)",
                "results_missed_by_slow_subscribers": "\(state.resultsDropped.value)"
            ])
        if stopped {
            // Results already handed to libzmq still go out (up to a second), rather than being dropped at close.
            try? resultsSocket.setLinger(milliseconds: 1000)
            resultsSocket.close()
        }  // else the record stage may still be publishing; exit closes it
        auth.stop()
        // Lingering results go out before the process ends (bounded: a socket some stuck part still
        // holds would otherwise keep the context alive forever).
        if stopped { context.terminate(timeout: 2) }
        return code
    }

    private func installSignalHandlers() {
        for sig in [SIGTERM, SIGINT, SIGHUP] {
            signal(sig, SIG_IGN)
            let src = DispatchSource.makeSignalSource(signal: sig, queue: .global())
            src.setEventHandler { [self] in
                if sig == SIGHUP {
                    log.notice("SIGHUP: reloading the log level")
                    reload?()
                } else {
                    log.notice("signal received, shutting down", metadata: ["signal": "\(sig)"])
                    shutdownRequested.signal()
                }
            }
            // libdispatch arms the source on its manager thread after resume(); until then the signal
            // is ignored and lost. Wait for the registration, so a SIGTERM sent once READY=1 is out
            // (a supervisor's or a test's) always stops the daemon.
            let armed = DispatchSemaphore(value: 0)
            src.setRegistrationHandler { armed.signal() }
            src.resume()
            if armed.wait(timeout: .now() + 10) == .timedOut {
                log.warning("signal source not armed after 10 s", metadata: ["signal": "\(sig)"])
            }
            signalSources.append(src)
        }
    }
}

/// One model stage's micro-batch, with its bookkeeping: the store learns which jobs are inside the
/// stage (and when they leave it), the crash journal which stage this thread runs.
struct StageRunner: Sendable {
    let processor: JobProcessor
    let gate: StoreGate
    let node: String
    let state: DaemonState
    let fault: FaultInjection?

    func run(_ stage: StageName, _ batch: [JobItem]) -> [JobItem] {
        let ids = batch.filter(\.ok).map(\.id)
        mark(stage, ids)
        state.beat()
        CrashJournal.enter(stage)
        fault?.crashIfPoisoned(stage, ids)
        let out = processor.run(stage, batch)
        CrashJournal.leave()
        mark(nil, ids)
        return out
    }

    /// Best effort within a few seconds (a store outage): the mark narrows the blame after a crash.
    private func mark(_ stage: StageName?, _ ids: [String]) {
        guard !ids.isEmpty else { return }
        _ = try? gate.retrying("record the stage", deadline: Date(timeIntervalSinceNow: 5)) { try $0.setStage(stage, ids: ids, node: node) }
    }
}

/// A test hook: LGAP_TEST_CRASH="<stage>:<id prefix>" makes the stage's worker die (a trap, like a
/// failed precondition) whenever its micro-batch holds a job whose id starts with the prefix — a
/// poison job on demand. Unset in any real deployment; lgapd logs a warning when it is armed.
struct FaultInjection: Sendable {
    let stage: StageName
    let idPrefix: String

    static func fromEnvironment() -> FaultInjection? {
        guard let spec = ProcessInfo.processInfo.environment["LGAP_TEST_CRASH"], let colon = spec.firstIndex(of: ":"),
            let stage = StageName(rawValue: String(spec[..<colon]))
        else { return nil }
        return FaultInjection(stage: stage, idPrefix: String(spec[spec.index(after: colon)...]))
    }

    func crashIfPoisoned(_ s: StageName, _ ids: [String]) {
        guard s == stage, let poison = ids.first(where: { $0.hasPrefix(idPrefix) }) else { return }
        fatalError("LGAP_TEST_CRASH: \(poison) in \(s.rawValue)")
    }
}
