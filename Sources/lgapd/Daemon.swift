// lgapd's parts and their lifecycle. Start order: store → pack → sockets → stages (back to front)
// → resume of unfinished jobs → ingest; READY=1 once ingest runs. SIGTERM/SIGINT: STOPPING=1, ingest
// stops reading, each stage drains and closes the next, the record stage flushes SQLite, exit 0 —
// or, past shutdown_timeout_s, exit 0 with the remaining jobs left accepted in SQLite for the next
// start to resume.
import CZeroMQ
import Digest
import Foundation
import ImageIO
import Logging
import Messaging
import Models
import Pipeline
import Provenance
import Stages
import Tensor

final class Daemon: @unchecked Sendable {
    static let version = "0.1.0"

    let config: DaemonConfig
    let log: Logger
    let store: JobStore
    let pack: Pack
    let processor: JobProcessor
    let context: ZMQContext
    let ingestSocket: ZMQSocket
    let resultsSocket: ZMQSocket
    let notifier = SystemdNotifier()
    /// Lets model code (purification steps) report progress before `self` exists (see init).
    private var heartbeatBox: HeartbeatBox!
    let run: Int64
    var stages: [Stage<JobItem>] = []
    var first: Stage<JobItem>!
    private let state = NSLock()
    private var stopping_ = false
    private var heartbeat_ = Date()
    private let ingestDone = DispatchSemaphore(value: 0)
    private let resumeDone = DispatchSemaphore(value: 0)
    let shutdownRequested = DispatchSemaphore(value: 0)
    private var signalSources: [DispatchSourceSignal] = []
    private let published = Counter()
    let auth: CurveAuthenticator?

    var stopping: Bool { state.lock(); defer { state.unlock() }; return stopping_ }
    func beat() { state.lock(); heartbeat_ = Date(); state.unlock() }
    var heartbeat: Date { state.lock(); defer { state.unlock() }; return heartbeat_ }

    init(config: DaemonConfig, packFolder: String, log: Logger) throws {
        self.config = config
        self.log = log
        Engine.threads = config.threads
        store = try JobStore(path: config.database, durability: config.durability == "full" ? .full : .normal)
        let t0 = Date()
        pack = try Pack(folder: packFolder)
        let heartbeat = HeartbeatBox()
        processor = JobProcessor(pack: pack, options: ProcessorOptions(
            limits: ImageLimits(maxSide: config.maxImageSide, maxPixels: config.maxImagePixels), keepPurified: config.keepPurified,
            progress: { heartbeat.daemon?.beat() }))
        self.heartbeatBox = heartbeat
        log.info("loaded pack", metadata: ["pack": "\(packFolder)", "stages": "\(processor.stages.joined(separator: ","))",
                                          "seconds": "\(String(format: "%.2f", Date().timeIntervalSince(t0)))"])
        context = try ZMQContext()
        auth = config.curve ? try CurveAuthenticator(context: context, config: config, log: log) : nil
        ingestSocket = try ZMQSocket(context, config.ingestMode == "router" ? .router : .pull)
        resultsSocket = try ZMQSocket(context, .pub)
        try Self.configureSockets(ingest: ingestSocket, results: resultsSocket, config: config, auth: auth, log: log)
        // The run is recorded only once the sockets are bound, so a start that fails leaves no run.
        run = try store.beginRun(version: Self.version, config: config.snapshot, pack: packFolder, stages: processor.stages)
        for m in try pack.modelFiles() {
            try store.recordModel(run: run, stage: m.stage, name: m.name, path: m.path, sha256: m.sha256, parameters: m.parameters)
        }
        heartbeatBox.daemon = self
    }

    private static func configureSockets(ingest ingestSocket: ZMQSocket, results resultsSocket: ZMQSocket, config: DaemonConfig,
                                         auth: CurveAuthenticator?, log: Logger) throws {
        try ingestSocket.set(ZMQ_RCVHWM, Int32(config.ingestHighWaterMark))
        // A small kernel buffer too, so backpressure reaches producers after about high_water_mark jobs
        // instead of after the megabytes TCP autotuning would otherwise queue unseen.
        if config.ingestReceiveBufferBytes > 0 { try ingestSocket.set(ZMQ_RCVBUF, Int32(config.ingestReceiveBufferBytes)) }
        // Hard cap per frame: twice the configured limits, so frames between the limit and the cap are
        // refused with a recorded reason; beyond it libzmq drops the peer before buffering the frame.
        try ingestSocket.set(ZMQ_MAXMSGSIZE, Int64(2 * max(config.maxMessageBytes, config.maxHeaderBytes)))
        if config.ingestMode == "router" { try ingestSocket.set(ZMQ_ROUTER_MANDATORY, Int32(1)) }
        try resultsSocket.set(ZMQ_SNDHWM, Int32(config.resultsHighWaterMark))
        if let auth {
            try auth.configureServer(ingestSocket)
            try auth.configureServer(resultsSocket)
        }
        try ingestSocket.bind(config.ingestEndpoint)
        try resultsSocket.bind(config.resultsEndpoint)
        log.info("listening", metadata: ["ingest": "\(ingestSocket.lastEndpoint)", "mode": "\(config.ingestMode)",
                                         "results": "\(resultsSocket.lastEndpoint)", "curve": "\(config.curve)"])
    }

    // MARK: Stages

    func buildStages() {
        let batch = config.maxBatch, wait = config.maxWaitMs / 1000, cap = config.queueCapacity
        let record = Stage<JobItem>(name: "record", settings: StageSettings(capacity: cap, workers: 1, maxBatch: batch, maxWait: wait),
                                    process: { [unowned self] in self.record($0) }, emit: { _ in })
        var chain: [Stage<JobItem>] = [record]
        var next = record
        let p = processor
        let specs: [(String, Int, Int, @Sendable ([JobItem]) -> [JobItem])] = [
            ("classify", config.classifyWorkers, batch, { p.classify($0) }),
            ("purify", config.purifyWorkers, batch, { p.purify($0) }),
            ("caption", config.captionWorkers, batch, { p.caption($0) }),
            ("decode", config.decodeWorkers, batch, { [unowned self] items in
                try? self.store.markStarted(items.map(\.id), run: self.run)
                return p.decode(items)
            }),
        ]
        for (name, workers, maxBatch, fn) in specs where name == "decode" || processor.stages.contains(name) {
            let target = next
            let stage = Stage<JobItem>(name: name, settings: StageSettings(capacity: cap, workers: workers, maxBatch: maxBatch, maxWait: wait),
                                       process: { [unowned self] items in self.beat(); return fn(items) },
                                       emit: { item in target.queue.push(item) })
            chain.insert(stage, at: 0)
            next = stage
        }
        stages = chain
        first = chain[0]
        for s in stages { s.start() }
    }

    /// Records a micro-batch in one SQLite transaction, then publishes the results that write finished
    /// (only after the row is committed, and only by the write that finished the job, so restarts
    /// never publish a result twice).
    private func record(_ items: [JobItem]) -> [JobItem] {
        let finished: [Bool]
        do {
            finished = try store.finish(items.map { ($0.id, outcome($0)) }, run: run)
        } catch {
            for item in items { log.error("cannot record result", metadata: ["job": "\(item.id)", "error": "\(error)"]) }
            return items
        }
        for (item, first) in zip(items, finished) where first {
            let message = ResultMessage.json(ResultMessage.object(item, stages: processor.stages))
            do {
                try resultsSocket.send([Array("result".utf8), message], timeoutMs: 1000)
                published.add()
            } catch {
                log.warning("result not published", metadata: ["job": "\(item.id)", "error": "\(error)"])
            }
            if let f = item.failure {
                log.notice("job \(f.status)", metadata: ["job": "\(item.id)", "reason": "\(f.reason)", "error": "\(f.message)"])
            } else {
                log.debug("job done", metadata: ["job": "\(item.id)", "label": "\(item.prediction?.label ?? "-")"])
            }
        }
        return items
    }

    private func outcome(_ item: JobItem) -> JobOutcome {
        var o = JobOutcome(status: item.failure?.status ?? "done")
        o.reason = item.failure?.reason
        o.error = item.failure?.message
        o.stages = item.stagesRun
        let p = item.parameters
        o.strength = p.strength; o.steps = p.steps; o.guidance = p.guidance; o.eta = p.eta; o.ensemble = p.ensemble
        o.seed = Int64(bitPattern: p.seed)
        o.caption = item.caption?.text
        o.captionTokens = item.caption?.tokenIDs
        o.captionScore = item.caption?.score.map(Double.init)
        o.purifiedSHA256 = item.purifiedSHA256
        o.purifiedPNG = item.purifiedPNG
        if let pr = item.prediction {
            o.predLabel = pr.label
            o.predIndex = pr.labelIndex
            o.confidence = Double(pr.confidence)
            o.topK = String(decoding: (try? JSONEncoder().encode(pr.topK)) ?? Data("[]".utf8), as: UTF8.self)
        }
        o.consistency = item.consistency?.rawValue
        o.timings = item.timings
        return o
    }

    // MARK: Lifecycle

    func start() throws {
        buildStages()
        installSignalHandlers()
        // Resume accepted-but-unfinished jobs before taking new ones; pushes block while the pipeline
        // is full, so this runs on its own thread beside ingest.
        let endpoint = ingestSocket.lastEndpoint  // read here: from now on the socket belongs to the ingest thread
        let pending = try store.unfinished()
        if !pending.isEmpty { log.notice("resuming unfinished jobs", metadata: ["count": "\(pending.count)"]) }
        Thread { [self] in
            for job in pending {
                let params = PurificationParameters(strength: job.strength, steps: job.steps, guidance: job.guidance, eta: job.eta,
                                                    seed: UInt64(bitPattern: job.seed), ensemble: job.ensemble)
                let item = JobItem(id: job.id, input: [UInt8](job.input), format: job.inputFormat, parameters: params,
                                   receivedAt: Date(timeIntervalSince1970: job.receivedAt))
                // A job that was started max_attempts times without finishing took the daemon down each
                // time: record it as failed instead of retrying it forever.
                if job.attempts >= config.maxAttempts {
                    item.failure = ("failed", "too_many_attempts",
                                    "started \(job.attempts) times without finishing (max_attempts = \(config.maxAttempts))")
                    log.error("giving up on job", metadata: ["job": "\(job.id)", "attempts": "\(job.attempts)"])
                }
                if !first.queue.push(item) { break }
            }
            resumeDone.signal()
        }.start()
        let ingest = Thread { [self] in
            Ingest(daemon: self).loop()
            ingestDone.signal()
        }
        ingest.name = "lgap-ingest"
        ingest.start()
        startMonitor()
        notifier.notify("READY=1\nSTATUS=serving on \(endpoint)\nMAINPID=\(getpid())")
        log.info("ready", metadata: ["run": "\(run)", "version": "\(Self.version)"])
    }

    private func installSignalHandlers() {
        for sig in [SIGTERM, SIGINT] {
            signal(sig, SIG_IGN)
            let src = DispatchSource.makeSignalSource(signal: sig, queue: .global())
            src.setEventHandler { [self] in
                log.notice("signal received, shutting down", metadata: ["signal": "\(sig)"])
                shutdownRequested.signal()
            }
            // libdispatch arms the source on its manager thread after resume(); until then the signal
            // is ignored and lost. Wait for the registration, so a SIGTERM sent once READY=1 is out (a
            // supervisor's or a test's) always stops the daemon. Seen in ServiceTests under load: a
            // daemon that missed its SIGTERM and ran on.
            let armed = DispatchSemaphore(value: 0)
            src.setRegistrationHandler { armed.signal() }
            src.resume()
            if armed.wait(timeout: .now() + 10) == .timedOut {
                log.warning("signal source not armed after 10 s", metadata: ["signal": "\(sig)"])
            }
            signalSources.append(src)
        }
    }

    /// Stage statistics to SQLite, STATUS= and the watchdog, every status interval.
    private func startMonitor() {
        let t = Thread { [self] in
            let interval = min(config.statusInterval, notifier.watchdogInterval.map { $0 / 2 } ?? .infinity)
            var lastStats = Date.distantPast
            while !stopping {
                Thread.sleep(forTimeInterval: interval)
                if Date().timeIntervalSince(lastStats) >= config.statusInterval {
                    lastStats = Date()
                    flushStats()
                    let depth = stages.map { "\($0.name) \($0.queue.count)/\($0.settings.capacity)" }.joined(separator: ", ")
                    notifier.notify("STATUS=\(published.value) results; queues: \(depth)")
                }
                // Healthy: some thread made progress recently, or there is nothing to do.
                if let wd = notifier.watchdogInterval,
                   Date().timeIntervalSince(heartbeat) < wd || stages.allSatisfy({ $0.queue.count == 0 }) {
                    notifier.notify("WATCHDOG=1")
                }
            }
        }
        t.name = "lgap-monitor"
        t.start()
    }

    func flushStats() {
        for s in stages {
            try? store.updateStageStats(run: run, stage: s.name, capacity: s.settings.capacity, highWater: s.queue.highWater, processed: s.processed)
        }
    }

    /// Blocks until SIGTERM/SIGINT, then shuts down; returns the exit code.
    func waitAndShutdown() -> Int32 {
        shutdownRequested.wait()
        notifier.notify("STOPPING=1")
        state.lock(); stopping_ = true; state.unlock()
        let deadline = Date(timeIntervalSinceNow: config.shutdownTimeout)
        // Ingest stops within one receive timeout (or once its pending push gets in) and closes its own
        // socket: ZeroMQ sockets must not be touched from another thread, so none is closed here while
        // its thread may still use it. Closing the first queue releases a push still waiting.
        _ = ingestDone.wait(timeout: .now() + max(0, deadline.timeIntervalSinceNow))
        first.queue.close()
        _ = resumeDone.wait(timeout: .now() + 0.1)
        var drained = true
        for s in stages {
            if !s.join(timeout: max(0, deadline.timeIntervalSinceNow)) { drained = false; break }
            if let i = stages.firstIndex(where: { $0 === s }), i + 1 < stages.count { stages[i + 1].queue.close() }
        }
        flushStats()
        let reason = drained ? "sigterm" : "shutdown timeout (unfinished jobs stay accepted and resume on next start)"
        try? store.endRun(run, reason: reason)
        log.notice("stopped", metadata: ["drained": "\(drained)", "results": "\(published.value)"])
        if drained { resultsSocket.close() }  // else the record stage may still be publishing on it; exit closes it
        auth?.stop()
        return 0
    }

    // MARK: Ingest helpers

    /// Effective purification parameters for a job (pack defaults ← config ← job header).
    func parameters(for params: JobParams) -> PurificationParameters {
        pack.parameters(strength: params.strength ?? config.strength, steps: params.steps ?? config.steps,
                        guidance: params.guidance ?? config.guidance, eta: params.eta ?? config.eta,
                        ensemble: params.ensemble ?? config.ensemble,
                        seed: params.seed ?? config.seed ?? UInt64.random(in: 0..<(1 << 31)))
    }
}

/// A weak reference to the daemon for the progress callback, which is built before the daemon is.
final class HeartbeatBox: @unchecked Sendable {
    weak var daemon: Daemon?
}

/// A thread-safe counter.
final class Counter: @unchecked Sendable {
    private let lock = NSLock()
    private var n = 0
    func add() { lock.lock(); n += 1; lock.unlock() }
    var value: Int { lock.lock(); defer { lock.unlock() }; return n }
}
