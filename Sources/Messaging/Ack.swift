// Router-mode acknowledgements: {"id", "status": "accepted" | "duplicate" | "rejected", "reason",
// "message"}. The id is always the one the request claimed when it had a valid one, so a producer
// can match every ack — refusals and store outages included.
import Foundation
import JobModel

public struct Ack: Codable, Equatable, Sendable {
    public enum Status: String, Codable, Sendable { case accepted, duplicate, rejected }
    public var id: String
    public var status: Status
    public var reason: ReasonCode?
    public var message: String?

    public init(id: String, status: Status, reason: ReasonCode? = nil, message: String? = nil) {
        self.id = id; self.status = status; self.reason = reason; self.message = message
    }

    public var bytes: [UInt8] {
        let enc = JSONEncoder()
        enc.outputFormatting = [.sortedKeys, .withoutEscapingSlashes]
        return Array((try? enc.encode(self)) ?? Data(#"{"status":"rejected"}"#.utf8))
    }

    public static func decode(_ bytes: [UInt8]) -> Ack? { try? JSONDecoder().decode(Ack.self, from: Data(bytes)) }
}
