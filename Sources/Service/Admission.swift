// The door: a received message (frames) and the limits in, an admitted job or a refusal with its
// reason out. Pure — no socket, no store — so every rule is unit-tested without a daemon.
//
// Everything decidable from the frames, the header and the image's own header (format, dimensions,
// colour variant) is decided here, before anything is acknowledged or decoded. A refusal carries the
// id the header claimed whenever it had a valid one, whatever else is wrong, so the producer can
// match the refusal to its request.
import Foundation
import ImageIO
import JobModel
import Messaging
import Models

/// How a job's requested parameters become the ones it runs with, and whether the pack can run them.
public struct ParameterPolicy: Sendable {
    /// Pack defaults ← configuration ← the header's params (a fresh seed when none is given).
    public var resolve: @Sendable (JobParams) -> PurificationParameters
    /// Throws with the reason when the pack cannot run them.
    public var validate: @Sendable (PurificationParameters) throws -> Void

    public init(
        resolve: @escaping @Sendable (JobParams) -> PurificationParameters,
        validate: @escaping @Sendable (PurificationParameters) throws -> Void
    ) {
        self.resolve = resolve
        self.validate = validate
    }
}

public struct Admission: Sendable {
    public struct Limits: Sendable, Equatable {
        public var maxHeaderBytes: Int
        public var maxMetaBytes: Int
        public var maxMessageBytes: Int
        public var image: ImageLimits
        public var maxJobCost: Int64
        public var maxInflightBytes: Int64

        public init(_ c: DaemonConfig) {
            maxHeaderBytes = c.maxHeaderBytes
            maxMetaBytes = c.maxMetaBytes
            maxMessageBytes = c.maxMessageBytes
            image = ImageLimits(maxSide: c.maxImageSide, maxPixels: c.maxImagePixels)
            maxJobCost = c.maxJobCost
            maxInflightBytes = c.maxInflightBytes
        }
    }

    /// A message that passed every check at the door.
    public struct Admitted: Sendable {
        public var header: JobHeader
        public var image: [UInt8]
        public var format: ImageFormat
        public var width: Int
        public var height: Int
        public var parameters: PurificationParameters
        public var cost: Int64
        public var memoryBytes: Int64
    }

    public struct Refusal: Error, Sendable, Equatable {
        /// The id the header claimed, when it had a valid one.
        public var claimedID: String?
        public var reason: ReasonCode
        public var message: String
        /// The header's first KiB with control characters escaped (for the refusal record).
        public var header: String?
    }

    public let limits: Limits
    public let policy: ParameterPolicy
    public let costModel: CostModel

    public init(limits: Limits, policy: ParameterPolicy, costModel: CostModel) {
        self.limits = limits
        self.policy = policy
        self.costModel = costModel
    }

    public func admit(frames: [[UInt8]], dropped: Int) -> Result<Admitted, Refusal> {
        do {
            return .success(try check(frames: frames, dropped: dropped))
        } catch let r as Refusal {
            return .failure(r)
        } catch {
            return .failure(Refusal(claimedID: nil, reason: .badHeader, message: "\(error)", header: nil))
        }
    }

    private func check(frames: [[UInt8]], dropped: Int) throws -> Admitted {
        let headerText = frames.first.map { Sanitize.text(String(decoding: $0.prefix(1024), as: UTF8.self)) }
        let claimed = frames.first.flatMap { $0.count <= limits.maxHeaderBytes ? Self.claimedID(in: $0) : nil }
        func refuse(_ reason: ReasonCode, _ message: String, id: String? = nil) -> Refusal {
            Refusal(claimedID: id ?? claimed, reason: reason, message: message, header: headerText)
        }
        if frames.count + dropped > 2 { throw refuse(.extraFrames, ProtocolError.extraFrames(frames.count + dropped).description) }
        if frames.count < 2 { throw refuse(.missingFrame, ProtocolError.missingFrame(frames.count).description) }
        let (headerBytes, image) = (frames[0], frames[1])
        let header: JobHeader
        do {
            header = try JobHeader.parse(headerBytes, limits: HeaderLimits(maxHeaderBytes: limits.maxHeaderBytes, maxMetaBytes: limits.maxMetaBytes))
        } catch let e as ProtocolError {
            throw refuse(e.code, e.description)
        } catch {
            throw refuse(.badHeader, "\(error)")
        }
        let id = header.id
        if image.count > limits.maxMessageBytes {
            throw refuse(.frameTooLarge, ProtocolError.imageTooLarge(image.count, limit: limits.maxMessageBytes).description, id: id)
        }
        if image.isEmpty { throw refuse(.emptyImage, "the image frame is empty", id: id) }
        if let s = header.params.seed, s > UInt64(Int64.max) { throw refuse(.badParams, "params: seed must be below 2^63", id: id) }
        let params = policy.resolve(header.params)
        do { try policy.validate(params) } catch { throw refuse(.badParams, "params: \(error)", id: id) }
        // Format: sniffed from the magic bytes; a declared format must agree.
        guard let sniffed = ImageFormat.sniff(image) else { throw refuse(.unknownFormat, ImageError.unknownFormat.description, id: id) }
        if let declared = header.format, declared != sniffed {
            throw refuse(.formatMismatch, "declared \(declared.rawValue) but the data is \(sniffed.rawValue)", id: id)
        }
        // Dimensions (and refused variants) from the image's header, before any pixel is decoded.
        let dims: (format: ImageFormat, width: Int, height: Int)
        do { dims = try ImageCodec.dimensions(image) } catch let e as ImageError {
            throw refuse(ReasonCode(rawValue: e.reasonCode) ?? .corruptImage, e.description, id: id)
        } catch {
            throw refuse(.corruptImage, "\(error)", id: id)
        }
        let l = limits.image
        guard dims.width > 0, dims.height > 0, dims.width <= l.maxSide, dims.height <= l.maxSide, dims.width * dims.height <= l.maxPixels else {
            throw refuse(.imageTooLarge, ImageError.tooLarge(sniffed, width: dims.width, height: dims.height, limits: l).description, id: id)
        }
        let cost = costModel.cost(params, width: dims.width, height: dims.height)
        if cost > limits.maxJobCost {
            throw refuse(
                .tooExpensive,
                "the job costs \(cost) pixel-steps (\(dims.width)×\(dims.height), ensemble \(params.ensemble), "
                    + "\(Int(Double(params.steps) * params.strength)) steps, guidance \(params.guidance)); max_job_cost is \(limits.maxJobCost)", id: id)
        }
        let memory = costModel.memoryBytes(params, width: dims.width, height: dims.height)
        if memory > limits.maxInflightBytes {
            throw refuse(.tooExpensive, "the job needs about \(memory) bytes in the pipeline; max_inflight_bytes is \(limits.maxInflightBytes)", id: id)
        }
        return Admitted(
            header: header, image: image, format: sniffed, width: dims.width, height: dims.height, parameters: params,
            cost: cost, memoryBytes: memory)
    }

    /// The "id" of a header that is a JSON object, if that id is valid (whatever else is wrong with it).
    static func claimedID(in header: [UInt8]) -> String? {
        guard let object = try? JSONSerialization.jsonObject(with: Data(header)) as? [String: Any],
            let id = object["id"] as? String, Identifiers.isValidJobID(id)
        else { return nil }
        return id
    }

    /// A time-ordered unique id for jobs that came without one: milliseconds since 1970 in hex, then
    /// 8 random hex digits.
    public static func newID() -> String {
        String(format: "%011llx-%08x", UInt64(Date().timeIntervalSince1970 * 1000), UInt32.random(in: 0...UInt32.max))
    }
}
