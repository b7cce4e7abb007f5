// The receive loop: the only thread that touches the ingest socket. Each message goes through the
// door (Admission); a refusal is recorded and acknowledged with its reason, an admitted job is
// committed to the store, acknowledged (router mode, after the commit) and announced to the feeder.
//
// Backpressure: while max_backlog accepted jobs wait for the pipeline, the loop stops reading, so
// libzmq's high-water mark and then TCP push back on producers (router mode with the store down
// excepted: then every message is answered store_unavailable). Acks never block: a peer that does not
// read them costs only its own acks (counted as undeliverable), never another producer's time.
//
// Stopping (pull mode): the connections get our FIN (ConnectionGuard), every message already on the
// wire is read and committed as accepted, and the socket closes only once every peer has closed its
// side — messages still queued at a producer stay there for the next start. Router producers resend
// what was not acknowledged.
import Digest
import Foundation
import JobModel
import Logging
import Messaging
import Provenance

public final class IngestLoop: Service, @unchecked Sendable {
    public let name = "ingest"
    let socket: ZMQSocket
    let connections: ConnectionGuard?
    let mode: IngestMode
    let admission: Admission
    let gate: StoreGate
    let feeder: Feeder
    let state: DaemonState
    let log: Logger
    let node: String
    let runID: Int64
    let maxBacklog: Int
    let drainTimeout: TimeInterval
    /// Refuses new producer handshakes (before the drain half-closes the open connections).
    let closeIntake: @Sendable () -> Void
    private let lock = NSLock()
    private var stopRequested = false
    private var drainDeadline = Date.distantFuture

    public init(
        socket: ZMQSocket, connections: ConnectionGuard?, mode: IngestMode, admission: Admission, gate: StoreGate, feeder: Feeder,
        state: DaemonState, log: Logger, node: String, run: Int64, maxBacklog: Int, drainTimeout: TimeInterval,
        closeIntake: @escaping @Sendable () -> Void = {}
    ) {
        self.closeIntake = closeIntake
        self.socket = socket
        self.connections = connections
        self.mode = mode
        self.admission = admission
        self.gate = gate
        self.feeder = feeder
        self.state = state
        self.log = log
        self.node = node
        self.runID = run
        self.maxBacklog = maxBacklog
        self.drainTimeout = drainTimeout
        connections?.onRefused = { [state, log] open in
            state.refusedConnections.add()
            log.warning("connection refused: max_connections reached", metadata: ["open": "\(open)"])
        }
    }

    public func stop() { lock.lock(); stopRequested = true; lock.unlock() }

    /// Committing what is already on the wire is never cut short by shutdown_timeout_s.
    public var minimumStopTime: TimeInterval? { drainTimeout + 1 }
    private var stopping: Bool { lock.lock(); defer { lock.unlock() }; return stopRequested }

    public func run() throws {
        state.ingestRunning = true
        defer {
            state.ingestRunning = false
            connections?.close()
            socket.close()  // this thread owns the socket, so it closes it
        }
        // The monitor is not polled here: the guard reads its events whenever it is asked (the ZAP
        // handler asks before every handshake), and this loop has it read them at each turn.
        let watched = [socket]
        while !stopping {
            state.beat()
            try connections?.pump()
            // Too many accepted jobs waiting: stop reading until the feeder takes some. Except in router
            // mode while the store is unavailable: the backlog cannot drain then (claims write too), and
            // a producer is owed an answer — each message read is refused store_unavailable at once.
            let refusingForTheStore = mode == .router && state.storeError != nil
            guard refusingForTheStore || feeder.waitForBacklog(below: maxBacklog, timeout: 0.1) else { continue }
            let ready = try ZMQSocket.poll(watched, timeoutMs: 200)
            guard ready.first == true else { continue }
            let batch = try receiveBatch(timeoutMs: 0)
            if !batch.isEmpty { handle(batch, draining: false) }
        }
        if mode == .pull { try drain() }
    }

    /// Reads and commits everything already on the wire, then lets the socket close.
    ///
    /// Order matters. New handshakes are held first, so no new connection can carry a message. Then
    /// what the open connections send is read until the wire is quiet (a producer's backlog flows in
    /// while the connection is whole): libzmq pauses reading a connection whose queue is full, and a
    /// connection that hangs up while paused loses what is still in the kernel's buffer (the hang-up is
    /// handled as an error), so the FIN must find the connections idle. Only then does every connection
    /// get our FIN, and reading goes on until each peer has closed its side. A producer that never
    /// pauses for the first half of drain_timeout_s gets its FIN mid-stream: the last messages it wrote
    /// may then be lost (pull mode has no acknowledgements; router mode producers resend).
    private func drain() throws {
        let deadline = Date(timeIntervalSinceNow: drainTimeout)
        lock.lock(); drainDeadline = deadline; lock.unlock()
        closeIntake()
        // Quiet means a gap of a few milliseconds with everything read: a producer with a backlog
        // streams back to back (microsecond gaps), so a gap shows its connection idle; a longer wait would
        // never come from a producer that sends steadily (100 jobs a second leave 10 ms gaps).
        var committed = try readUntilQuiet(for: 0.004, deadline: Date(timeIntervalSinceNow: drainTimeout / 2))
        try connections?.beginDrain()
        while Date() < deadline {
            committed += try readUntilQuiet(for: 0.1, deadline: deadline)
            // Done when every peer closed its side and nothing arrived for a while.
            if connections?.drained ?? true { break }
        }
        let open = connections?.openCount ?? 0
        if open > 0 {
            log.error(
                "intake drain deadline passed with connections still open: messages in flight on them may be lost",
                metadata: ["open": "\(open)", "drain_timeout_s": "\(drainTimeout)"])
        }
        log.notice(
            "intake drained",
            metadata: [
                "committed_while_draining": "\(committed)", "connections_still_open": "\(open)",
                "connections_half_closed": "\(connections?.halfClosed ?? 0)"
            ])
    }

    /// Reads and commits messages until none has arrived for `quiet` seconds (or the deadline).
    private func readUntilQuiet(for quiet: TimeInterval, deadline: Date) throws -> Int {
        var n = 0
        var last = Date()
        while Date() < deadline && Date().timeIntervalSince(last) < quiet {
            try connections?.pump()
            let batch = try receiveBatch(limit: 256, timeoutMs: max(1, Int32(quiet * 250)))
            if !batch.isEmpty {
                handle(batch, draining: true)
                n += batch.count
                last = Date()
            }
        }
        return n
    }

    // MARK: Messages

    /// Up to `limit` messages waiting on the socket (none: waits at most `timeoutMs` for the first).
    private func receiveBatch(limit: Int = 64, timeoutMs: Int32) throws -> [ZMQMessage] {
        var out: [ZMQMessage] = []
        do {
            while out.count < limit, let m = try socket.receive(timeoutMs: out.isEmpty ? timeoutMs : 0, maxFrames: 6) { out.append(m) }
        } catch let e as ZMQError where e.isTerminated {}
        return out
    }

    /// The door for each message, then one store transaction for every job it admitted, then the acks
    /// in the order the messages came.
    func handle(_ messages: [ZMQMessage], draining: Bool) {
        var admitted: [(record: JobRecord, envelope: [[UInt8]])] = []
        var acks: [(envelope: [[UInt8]], ack: Ack?)] = []  // nil: the next admitted job's ack
        for message in messages {
            var frames = message.frames
            var envelope: [[UInt8]] = []
            var peer = message.peerAddress
            if mode == .router {
                guard !frames.isEmpty else { continue }
                let identity = frames.removeFirst()
                envelope = [identity]
                peer = (peer.map { $0 + "/" } ?? "") + SHA256.hexString(identity)
                // REQ peers put an empty delimiter before the payload; DEALER peers do not (their first
                // frame may itself be empty). The handshake told us which socket type the peer is.
                let isREQ = message.peerSocketType.map { $0 == .req } ?? (frames.count == 3 && frames.first?.isEmpty == true)
                if isREQ, frames.first?.isEmpty == true { envelope.append(frames.removeFirst()) }
            }
            switch admission.admit(frames: frames, dropped: message.dropped) {
            case .failure(let refusal):
                acks.append((envelope, refuse(refusal, peer: peer, image: frames.count >= 2 ? frames[1] : nil)))
            case .success(let a):
                let record = JobRecord(
                    id: a.header.id ?? Admission.newID(), node: node, receivedAt: Date(), runId: runID, mode: mode,
                    peer: peer, input: a.image, inputSha256: SHA256.hex(a.image), inputFormat: a.format, width: a.width,
                    height: a.height, label: a.header.label, meta: a.header.meta,
                    requestedParams: a.header.params.isEmpty ? nil : a.header.params, params: a.parameters, cost: a.cost)
                admitted.append((record, envelope))
                acks.append((envelope, nil))
            }
        }
        var jobAcks = admitted.isEmpty ? [] : commit(admitted, draining: draining)[...]
        for (envelope, a) in acks {
            guard let answer = a ?? jobAcks.popFirst() else { continue }
            state.metrics.job(answer.status.rawValue, answer.reason)
            ack(envelope, answer)
        }
    }

    /// Commits the admitted jobs; their acks, in order.
    private func commit(_ jobs: [(record: JobRecord, envelope: [[UInt8]])], draining: Bool) -> [Ack] {
        let records = jobs.map(\.record)
        do {
            // Router producers get an answer within seconds (store_unavailable: retry later); a pull
            // message has no way back, so it is held and retried until the store takes it.
            let outcomes: [InsertOutcome]
            if mode == .router {
                outcomes = try gate.retrying("commit jobs", deadline: Date(timeIntervalSinceNow: 2)) { try $0.insertAccepted(records) }
            } else {
                let pastDrain = { self.stopping && Date() > self.lock.withLock { self.drainDeadline } }
                outcomes = try gate.retrying("commit jobs", giveUp: pastDrain) { try $0.insertAccepted(records) }
            }
            return zip(jobs, outcomes).map { job, outcome in
                switch outcome {
                case .inserted:
                    state.accepted.add()
                    feeder.accepted()
                    return Ack(id: job.record.id, status: .accepted)
                case .duplicate:
                    state.duplicates.add()
                    return Ack(id: job.record.id, status: .duplicate, reason: .duplicateID, message: "a job with this id was already accepted")
                }
            }
        } catch {
            return jobs.map { job in
                log.error("job not committed", metadata: ["job": "\(job.record.id)", "error": "\(error)", "draining": "\(draining)"])
                return Ack(id: job.record.id, status: .rejected, reason: .storeUnavailable, message: "\(error)")
            }
        }
    }

    /// Records a refusal; its ack.
    private func refuse(_ r: Admission.Refusal, peer: String?, image: [UInt8]?) -> Ack {
        state.refused.add()
        let record = RefusalRecord(
            claimedId: r.claimedID, reason: r.reason, error: r.message, node: node, receivedAt: Date(), runId: runID,
            mode: mode, peer: peer, inputSha256: image.map { SHA256.hex($0) }, inputSize: image?.count, header: r.header)
        do { try gate.once("record a refusal") { try $0.insertRefusal(record) } } catch {
            log.error("refusal not recorded", metadata: ["error": "\(error)"])
        }
        log.notice(
            "refused at the door",
            metadata: [
                "job": "\(r.claimedID ?? "-")", "reason": "\(r.reason.rawValue)",
                "error": "\(Sanitize.text(r.message))", "peer": "\(Sanitize.text(peer ?? "-"))"
            ])
        return Ack(id: r.claimedID ?? "", status: .rejected, reason: r.reason, message: r.message)
    }

    /// Router mode: sends an ack without waiting. A peer that is gone or does not read its acks loses
    /// them (counted); nobody else waits for it.
    private func ack(_ envelope: [[UInt8]], _ a: Ack) {
        guard mode == .router, !envelope.isEmpty else { return }
        do {
            if try socket.trySend(envelope + [a.bytes]) { return }
        } catch {}
        state.acksUndeliverable.add()
        if state.acksUndeliverable.value.isPowerOfTwo {
            log.warning(
                "ack not delivered: the peer is gone or does not read its acks",
                metadata: ["job": "\(a.id)", "undeliverable_total": "\(state.acksUndeliverable.value)"])
        }
    }
}

extension Int {
    /// 1, 2, 4, 8, … — for logging a growing count without a line per event.
    var isPowerOfTwo: Bool { self > 0 && (self & (self - 1)) == 0 }
}
