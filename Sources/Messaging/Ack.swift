// Router-mode acknowledgements: {"id", "status": "accepted" | "duplicate" | "rejected", "reason"}.
import Foundation

public struct Ack: Codable, Equatable, Sendable {
    public enum Status: String, Codable, Sendable { case accepted, duplicate, rejected }
    public var id: String
    public var status: Status
    public var reason: String?
    public var message: String?

    public init(id: String, status: Status, reason: String? = nil, message: String? = nil) {
        self.id = id; self.status = status; self.reason = reason; self.message = message
    }

    public var bytes: [UInt8] {
        let enc = JSONEncoder()
        enc.outputFormatting = [.sortedKeys, .withoutEscapingSlashes]
        return Array((try? enc.encode(self)) ?? Data(#"{"status":"rejected"}"#.utf8))
    }

    public static func decode(_ bytes: [UInt8]) -> Ack? { try? JSONDecoder().decode(Ack.self, from: Data(bytes)) }
}
