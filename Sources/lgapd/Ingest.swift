// The receive loop: the only thread that reads the ingest socket. It validates each message at the
// door (frames, sizes, header, parameters, format and the image header's dimensions), records
// refusals, commits accepted jobs to SQLite, acknowledges them (router mode, after the commit) and
// pushes them into the pipeline — blocking while the pipeline is full, which stops reading and lets
// the socket's high-water mark push back on producers.
import Foundation
import ImageIO
import Logging
import Messaging
import Models
import Provenance
import Stages

struct Ingest {
    let daemon: Daemon

    var router: Bool { daemon.config.ingestMode == "router" }

    func loop() {
        let socket = daemon.ingestSocket
        defer { socket.close() }  // this thread owns the socket, so it closes it
        while !daemon.stopping {
            daemon.beat()
            let received: (frames: [[UInt8]], dropped: Int)?
            do {
                received = try socket.receive(timeoutMs: 200, maxFrames: 6)
            } catch {
                if (error as? ZMQError)?.isTerminated == true { return }
                daemon.log.error("receive failed", metadata: ["error": "\(error)"])
                continue
            }
            guard let (frames, dropped) = received else { continue }
            handle(frames: frames, dropped: dropped)
        }
    }

    /// Routing envelope (router mode): the peer's identity, then an empty delimiter for REQ peers.
    struct Envelope {
        var prefix: [[UInt8]] = []
        var peer: String?
    }

    func handle(frames all: [[UInt8]], dropped: Int) {
        var frames = all
        var envelope = Envelope()
        if router {
            guard !frames.isEmpty else { return }
            let identity = frames.removeFirst()
            envelope.prefix = [identity]
            envelope.peer = identity.map { String(format: "%02x", $0) }.joined()
            if frames.first?.isEmpty == true {  // REQ's delimiter
                envelope.prefix.append(frames.removeFirst())
            }
        }
        let receivedAt = Date()
        do {
            let (job, item) = try admit(frames: frames, dropped: dropped, peer: envelope.peer, receivedAt: receivedAt)
            switch try daemon.store.insertAccepted(job, run: daemon.run) {
            case .inserted:
                ack(envelope, Ack(id: job.id, status: .accepted))
                if !daemon.first.queue.push(item) { return }  // closed: shutting down; the job stays accepted in SQLite
            case .duplicate:
                ack(envelope, Ack(id: job.id, status: .duplicate, reason: "duplicate_id", message: "a job with this id was already accepted"))
            }
        } catch let refusal as Refusal {
            reject(refusal, envelope: envelope, frames: frames)
        } catch {
            daemon.log.error("cannot store job", metadata: ["error": "\(error)"])
            ack(envelope, Ack(id: "", status: .rejected, reason: "store_error", message: "\(error)"))
        }
    }

    struct Refusal: Error {
        let id: String?
        let reason: String
        let message: String
        let header: String?
    }

    /// Validates a message; returns the job to store and the item to process.
    func admit(frames: [[UInt8]], dropped: Int, peer: String?, receivedAt: Date) throws -> (NewJob, JobItem) {
        let c = daemon.config
        // A refusal is recorded and acked under the id the header claims, when it has a valid one,
        // whatever else is wrong with the message (frames, a field, params), so the producer can match it.
        func refuse(_ e: ProtocolError, id: String? = nil, header: String? = nil) -> Refusal {
            let claimed = id ?? frames.first.flatMap { $0.count <= c.maxHeaderBytes ? Self.claimedID(in: $0) : nil }
            return Refusal(id: claimed, reason: e.code, message: e.description, header: header)
        }
        if frames.count + dropped > 2 { throw refuse(.extraFrames(frames.count + dropped)) }
        if frames.count < 2 { throw refuse(.missingFrame(frames.count)) }
        let (headerBytes, image) = (frames[0], frames[1])
        if headerBytes.count > c.maxHeaderBytes { throw refuse(.headerTooLarge(headerBytes.count, limit: c.maxHeaderBytes)) }
        let headerText = String(decoding: headerBytes.prefix(1024), as: UTF8.self)
        let header: JobHeader
        do {
            header = try JobHeader.parse(headerBytes, limits: HeaderLimits(maxHeaderBytes: c.maxHeaderBytes, maxMetaBytes: c.maxMetaBytes))
        } catch let e as ProtocolError {
            throw refuse(e, header: headerText)
        }
        let id = header.id
        if image.count > c.maxMessageBytes { throw refuse(.imageTooLarge(image.count, limit: c.maxMessageBytes), id: id, header: headerText) }
        if image.isEmpty { throw Refusal(id: id, reason: "empty_image", message: "the image frame is empty", header: headerText) }
        if let s = header.params.seed, s > UInt64(Int64.max) { throw refuse(.badParams("seed must be below 2^63"), id: id, header: headerText) }
        let params = daemon.parameters(for: header.params)
        do { try daemon.pack.validate(params) } catch { throw Refusal(id: id, reason: "bad_params", message: "params: \(error)", header: headerText) }
        // Format: sniffed from the magic bytes; a declared format must agree.
        guard let sniffed = ImageFormat.sniff(image) else {
            throw Refusal(id: id, reason: "unknown_format", message: ImageError.unknownFormat.description, header: headerText)
        }
        if header.format != "auto", ImageFormat(name: header.format) != sniffed {
            throw Refusal(id: id, reason: "format_mismatch", message: "declared \(header.format) but the data is \(sniffed.rawValue)", header: headerText)
        }
        // Dimensions from the image header, before any pixel is decoded.
        let dims: (format: ImageFormat, width: Int, height: Int)
        do { dims = try ImageCodec.dimensions(image) } catch let e as ImageError {
            throw Refusal(id: id, reason: e.reasonCode, message: e.description, header: headerText)
        }
        guard dims.width > 0, dims.height > 0, dims.width <= c.maxImageSide, dims.height <= c.maxImageSide,
              dims.width * dims.height <= c.maxImagePixels else {
            let e = ImageError.tooLarge(sniffed, width: dims.width, height: dims.height,
                                        limits: ImageLimits(maxSide: c.maxImageSide, maxPixels: c.maxImagePixels))
            throw Refusal(id: id, reason: e.reasonCode, message: e.description, header: headerText)
        }
        let jobID = id ?? Self.newID()
        let requested = header.params.isEmpty ? nil
            : String(decoding: (try? JSONEncoder().encode(header.params)) ?? Data(), as: UTF8.self)
        let job = NewJob(id: jobID, receivedAt: receivedAt, mode: daemon.config.ingestMode, peer: peer, input: image,
                         inputFormat: sniffed.rawValue, width: dims.width, height: dims.height, label: header.label, meta: header.meta,
                         requestedParams: requested, strength: params.strength, steps: params.steps, guidance: params.guidance,
                         eta: params.eta, ensemble: params.ensemble, seed: Int64(bitPattern: params.seed))
        let item = JobItem(id: jobID, input: image, format: sniffed.rawValue, parameters: params, receivedAt: receivedAt)
        return (job, item)
    }

    func reject(_ r: Refusal, envelope: Envelope, frames: [[UInt8]]) {
        // A usable id is kept so the producer can look the refusal up; otherwise one is made.
        let id = r.id ?? "rejected-" + Self.newID()
        do {
            try daemon.store.insertRejected(id: id, run: daemon.run, mode: daemon.config.ingestMode, peer: envelope.peer, reason: r.reason,
                                            error: r.message, input: frames.count >= 2 ? frames[1] : nil, header: r.header)
        } catch {
            daemon.log.error("cannot record rejection", metadata: ["error": "\(error)"])
        }
        daemon.log.notice("rejected at the door", metadata: ["job": "\(id)", "reason": "\(r.reason)", "error": "\(r.message)"])
        ack(envelope, Ack(id: id, status: .rejected, reason: r.reason, message: r.message))
    }

    func ack(_ envelope: Envelope, _ a: Ack) {
        guard router else { return }
        do {
            try daemon.ingestSocket.send(envelope.prefix + [a.bytes], timeoutMs: 1000)
        } catch {
            daemon.log.warning("ack not delivered", metadata: ["job": "\(a.id)", "error": "\(error)"])
        }
    }

    /// The "id" of a header that is a JSON object, if that id is valid (whatever else is wrong with it).
    static func claimedID(in header: [UInt8]) -> String? {
        guard let object = try? JSONSerialization.jsonObject(with: Data(header)) as? [String: Any],
              let id = object["id"] as? String, JobHeader.isValidID(id) else { return nil }
        return id
    }

    /// A time-ordered unique id: milliseconds since 1970 in hex, then 8 random hex digits.
    static func newID() -> String {
        String(format: "%011llx-%08x", UInt64(Date().timeIntervalSince1970 * 1000), UInt32.random(in: 0...UInt32.max))
    }
}
