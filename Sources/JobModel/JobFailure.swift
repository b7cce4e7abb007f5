// Why a job could not complete: rejected (its input is bad) or failed (lgap could not process it).

public struct JobFailure: Error, Codable, Sendable, Equatable, CustomStringConvertible {
    public var status: JobStatus
    public var reason: ReasonCode
    public var message: String

    public init(_ status: JobStatus, _ reason: ReasonCode, _ message: String) {
        precondition(status == .rejected || status == .failed, "a failure is rejected or failed, not \(status)")
        self.status = status
        self.reason = reason
        self.message = message
    }

    public static func rejected(_ reason: ReasonCode, _ message: String) -> JobFailure { JobFailure(.rejected, reason, message) }
    public static func failed(_ reason: ReasonCode, _ message: String) -> JobFailure { JobFailure(.failed, reason, message) }

    public var description: String { "\(status.rawValue)/\(reason.rawValue): \(message)" }
}
