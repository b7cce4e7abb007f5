// The unit of work flowing through the stages: one job, filled in as it goes. A job that fails in a
// stage keeps flowing (later stages skip it), so the recorder always writes its outcome.
import Foundation
import ImageIO
import JobModel
import Models
import Tensor

public final class JobItem: @unchecked Sendable {
    public let id: String
    public let input: [UInt8]
    /// The declared format (nil: sniff the magic bytes).
    public let format: ImageFormat?
    public let parameters: PurificationParameters
    public let inputSHA256: String
    /// Store order (nil offline).
    public let seq: Int64?
    /// Bytes this job holds while in the pipeline (the in-flight budget's unit; see CostModel).
    public let memoryBytes: Int
    /// Runs alone: it was inside a model stage when a daemon died.
    public let isolated: Bool

    public var image: RGBImage?
    /// The decoded image's size (kept after the pixels are released).
    public var width = 0, height = 0
    public var caption: Caption?
    /// K purified copies at the purifier's working size, [K, 3, mh, mw]; released once classified.
    public var purified: Tensor?
    public var purifiedSHA256: String?
    public var purifiedPNG: [UInt8]?
    public var prediction: Prediction?
    public var consistency: Consistency?
    public var stagesRun: [StageName] = []
    /// Milliseconds per stage.
    public var timings: [String: Double] = [:]
    public var failure: JobFailure?

    public init(
        id: String, input: [UInt8], format: ImageFormat?, parameters: PurificationParameters, inputSHA256: String,
        seq: Int64? = nil, memoryBytes: Int = 0, isolated: Bool = false
    ) {
        self.id = id
        self.input = input
        self.format = format
        self.parameters = parameters
        self.inputSHA256 = inputSHA256
        self.seq = seq
        self.memoryBytes = memoryBytes
        self.isolated = isolated
    }

    public var ok: Bool { failure == nil }

    func fail(_ f: JobFailure) { if failure == nil { failure = f } }

    /// The finished job as the result message and the store's outcome.
    public func result(stages: [StageName], node: String? = nil) -> JobResult {
        var r = JobResult(
            id: id, status: .done, stages: stages, stagesRun: stagesRun, inputSha256: inputSHA256, params: parameters,
            timingsMs: timings.mapValues { ($0 * 1000).rounded() / 1000 })
        r.failure = failure
        r.node = node
        if let c = caption {
            r.caption = c.text
            r.captionTokens = c.tokenIDs
            r.captionScore = c.score.map(Double.init)
        }
        r.purifiedSha256 = purifiedSHA256
        r.purifiedPNG = purifiedPNG
        if let p = prediction {
            r.label = p.label
            r.labelIndex = p.labelIndex
            r.confidence = Double(p.confidence)
            r.topK = p.topK
        }
        r.consistency = consistency
        return r
    }
}
