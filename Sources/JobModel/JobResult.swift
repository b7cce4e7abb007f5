// A finished job: the JSON message published on the results socket (topic "result") and printed by
// `lgapctl purify`, and the outcome the store writes into the job's record — one type for both.
import Foundation
import Models

public struct JobResult: Codable, Sendable, Equatable {
    public var id: String
    public var status: JobStatus
    public var reason: ReasonCode?
    public var error: String?
    /// The stages the pack runs, and those that ran for this job.
    public var stages: [StageName]
    public var stagesRun: [StageName]
    public var inputSha256: String
    public var params: PurificationParameters
    public var caption: String?
    public var captionTokens: [Int]?
    public var captionScore: Double?
    public var purifiedSha256: String?
    public var label: String?
    public var labelIndex: Int?
    public var confidence: Double?
    public var topK: [RankedClass]?
    public var consistency: Consistency?
    /// Milliseconds per stage.
    public var timingsMs: [String: Double]
    /// The node that ran it (`[daemon] node`, default the host name).
    public var node: String?
    /// PNG of the first purified image, kept in the store for `lgapctl export` (never published).
    public var purifiedPNG: [UInt8]?

    enum CodingKeys: String, CodingKey {
        case id, status, reason, error, stages, params, caption, label, confidence, consistency, node
        case stagesRun = "stages_run", inputSha256 = "input_sha256", captionTokens = "caption_tokens"
        case captionScore = "caption_score", purifiedSha256 = "purified_sha256", labelIndex = "label_index"
        case topK = "top_k", timingsMs = "timings_ms"
    }

    public init(
        id: String, status: JobStatus, stages: [StageName], stagesRun: [StageName], inputSha256: String,
        params: PurificationParameters, timingsMs: [String: Double] = [:]
    ) {
        self.id = id
        self.status = status
        self.stages = stages
        self.stagesRun = stagesRun
        self.inputSha256 = inputSha256
        self.params = params
        self.timingsMs = timingsMs
    }

    public var failure: JobFailure? {
        get { reason.map { JobFailure(status, $0, error ?? "") } }
        set {
            status = newValue?.status ?? .done
            reason = newValue?.reason
            error = newValue?.message
        }
    }

    /// The published message: sorted keys, no escaped slashes (stable bytes for the same result).
    public var json: [UInt8] {
        let e = JSONEncoder()
        e.outputFormatting = [.sortedKeys, .withoutEscapingSlashes]
        return Array((try? e.encode(self)) ?? Data(#"{"status":"failed"}"#.utf8))
    }
}

extension JobResult {
    /// The result as JSON object (for callers that add keys, like lgapctl purify's "file").
    public var jsonObject: [String: Any] {
        (try? JSONSerialization.jsonObject(with: Data(json))) as? [String: Any] ?? [:]
    }
}
