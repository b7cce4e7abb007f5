// The unit of work flowing through the stages: one job, filled in as it goes. A job that fails in a
// stage keeps flowing (later stages skip it) so the record stage always writes its outcome.
import Foundation
import ImageIO
import Models

public final class JobItem: @unchecked Sendable {
    public let id: String
    public let input: [UInt8]
    /// "auto" or a declared format.
    public let format: String
    public let parameters: PurificationParameters
    public let receivedAt: Date

    public var image: RGBImage?
    public var caption: Caption?
    public var purified: [RGBImage] = []
    public var purifiedSHA256: String?
    public var purifiedPNG: [UInt8]?
    public var prediction: Prediction?
    public var consistency: Consistency?
    public var stagesRun: [String] = []
    public var timings: [String: Double] = [:]
    /// Set when the job cannot complete: (status "rejected" or "failed", reason code, message).
    public var failure: (status: String, reason: String, message: String)?

    public init(id: String, input: [UInt8], format: String, parameters: PurificationParameters, receivedAt: Date) {
        self.id = id
        self.input = input
        self.format = format
        self.parameters = parameters
        self.receivedAt = receivedAt
    }

    public var ok: Bool { failure == nil }

    func fail(_ status: String, _ reason: String, _ message: String) {
        if failure == nil { failure = (status, reason, message) }
    }
}
