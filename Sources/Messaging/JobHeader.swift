// The job header: frame 1 of a job message, UTF-8 JSON (see README "Wire protocol"):
//   {"id": "cam7-000123", "format": "auto", "label": "cat",
//    "params": {"strength": 0.3, "steps": 50, "guidance": 3, "seed": 42, "ensemble": 1},
//    "meta": {...}}
// Every field is optional. Parsing is strict — unknown fields, wrong types and out-of-pattern ids are
// errors with a reason code — because a producer's typo should be refused loudly, not ignored.
import Foundation
import ImageIO
import JobModel

public struct HeaderLimits: Sendable, Equatable {
    public var maxHeaderBytes = 16 * 1024
    public var maxMetaBytes = 4 * 1024
    public init(maxHeaderBytes: Int = 16 * 1024, maxMetaBytes: Int = 4 * 1024) {
        self.maxHeaderBytes = maxHeaderBytes
        self.maxMetaBytes = maxMetaBytes
    }
}

public struct JobHeader: Equatable, Sendable {
    public var id: String?
    /// The declared format; nil: "auto" (sniff the magic bytes).
    public var format: ImageFormat?
    public var label: String?
    public var params: JobParams
    /// The meta object re-serialised with sorted keys (bounded by HeaderLimits.maxMetaBytes).
    public var meta: String?

    public init(id: String? = nil, format: ImageFormat? = nil, label: String? = nil, params: JobParams = JobParams(), meta: String? = nil) {
        self.id = id; self.format = format; self.label = label; self.params = params; self.meta = meta
    }

    public static let formats: Set<String> = ["auto", "png", "jpeg", "jpg", "ppm"]

    /// ≤ 128 characters of [A-Za-z0-9._:-].
    public static func isValidID(_ id: String) -> Bool { Identifiers.isValidJobID(id) }

    public static func parse(_ bytes: [UInt8], limits: HeaderLimits = HeaderLimits()) throws -> JobHeader {
        guard bytes.count <= limits.maxHeaderBytes else {
            throw ProtocolError.headerTooLarge(bytes.count, limit: limits.maxHeaderBytes)
        }
        guard let text = String(bytes: bytes, encoding: .utf8) else {
            throw ProtocolError.badHeader("header is not valid UTF-8")
        }
        let json: Any
        do { json = try JSONSerialization.jsonObject(with: Data(text.utf8), options: [.fragmentsAllowed]) } catch {
            throw ProtocolError.badHeader("header is not valid JSON")
        }
        guard let obj = json as? [String: Any] else { throw ProtocolError.badHeader("header must be a JSON object") }
        if let key = JSONObjectKeys.firstDuplicate(in: bytes) {
            throw ProtocolError.badHeader("header repeats the key '\(Sanitize.text(String(key.prefix(40))))'")
        }
        var h = JobHeader()
        for (key, value) in obj {
            switch key {
            case "id":
                guard let s = value as? String else { throw ProtocolError.badField("id", "must be a string") }
                guard isValidID(s) else { throw ProtocolError.invalidID(Sanitize.text(String(s.prefix(140)))) }
                h.id = s
            case "format":
                guard let s = value as? String, formats.contains(s.lowercased()) else {
                    throw ProtocolError.unknownFormat(Sanitize.text(String(describing: value).prefix(40).description))
                }
                h.format = ImageFormat(name: s)
            case "label":
                if let s = value as? String {
                    guard s.utf8.count <= 64 else { throw ProtocolError.badField("label", "longer than 64 bytes") }
                    h.label = s
                } else if let n = value as? NSNumber, !isJSONBool(n), let i = Int(exactly: n.doubleValue) {
                    h.label = String(i)
                } else if !(value is NSNull) {
                    throw ProtocolError.badField("label", "must be a string or an integer class index")
                }
            case "params":
                guard let p = value as? [String: Any] else { throw ProtocolError.badField("params", "must be an object") }
                h.params = try parseParams(p)
            case "meta":
                guard value is [String: Any] else { throw ProtocolError.badField("meta", "must be an object") }
                let data = try JSONSerialization.data(withJSONObject: value, options: [.sortedKeys])
                guard data.count <= limits.maxMetaBytes else {
                    throw ProtocolError.badField("meta", "\(data.count) bytes exceeds the \(limits.maxMetaBytes)-byte limit")
                }
                h.meta = String(decoding: data, as: UTF8.self)
            default:
                throw ProtocolError.badField(Sanitize.text(String(key.prefix(40))), "unknown field")
            }
        }
        return h
    }

    static func parseParams(_ p: [String: Any]) throws -> JobParams {
        var out = JobParams()
        func number(_ key: String, _ v: Any) throws -> Double {
            guard let n = v as? NSNumber, !isJSONBool(n) else {
                throw ProtocolError.badParams("\(key) must be a number")
            }
            return n.doubleValue
        }
        func integer(_ key: String, _ v: Any) throws -> Int {
            let d = try number(key, v)
            guard d.isFinite, d == d.rounded(), abs(d) < 1e15 else { throw ProtocolError.badParams("\(key) must be an integer") }
            return Int(d)
        }
        for (key, value) in p {
            switch key {
            case "strength": out.strength = try number(key, value)
            case "steps": out.steps = try integer(key, value)
            case "guidance": out.guidance = try number(key, value)
            case "eta": out.eta = try number(key, value)
            case "ensemble": out.ensemble = try integer(key, value)
            case "seed":
                // Seeds are unsigned 64-bit; JSON numbers above 2^53 lose precision, so strings are accepted too.
                if let s = value as? String, let v = UInt64(s) {
                    out.seed = v
                } else if let n = value as? NSNumber, !isJSONBool(n), n.doubleValue >= 0,
                    n.doubleValue < 18446744073709551616.0, n.doubleValue == n.doubleValue.rounded()
                {
                    out.seed = n.uint64Value
                } else {
                    throw ProtocolError.badParams("seed must be a non-negative integer")
                }
            default:
                throw ProtocolError.badParams("unknown parameter '\(Sanitize.text(String(key.prefix(40))))'")
            }
        }
        return out
    }
}

/// JSONSerialization gives true/false as NSNumber too; they must not pass as numbers.
func isJSONBool(_ n: NSNumber) -> Bool { String(cString: n.objCType) == "c" }

/// Why a message was refused at the door; `code` is the machine-readable reason stored and sent.
public enum ProtocolError: Error, Equatable, CustomStringConvertible {
    case missingFrame(Int)
    case extraFrames(Int)
    case headerTooLarge(Int, limit: Int)
    case imageTooLarge(Int, limit: Int)
    case badHeader(String)
    case badField(String, String)
    case invalidID(String)
    case unknownFormat(String)
    case badParams(String)

    public var code: ReasonCode {
        switch self {
        case .missingFrame: return .missingFrame
        case .extraFrames: return .extraFrames
        case .headerTooLarge: return .headerTooLarge
        case .imageTooLarge: return .frameTooLarge
        case .badHeader, .badField: return .badHeader
        case .invalidID: return .invalidID
        case .unknownFormat: return .unknownFormat
        case .badParams: return .badParams
        }
    }

    public var description: String {
        switch self {
        case .missingFrame(let n): return "expected 2 frames (header, image), got \(n)"
        case .extraFrames(let n): return "expected 2 frames (header, image), got \(n)"
        case .headerTooLarge(let n, let l): return "header of \(n) bytes exceeds the \(l)-byte limit"
        case .imageTooLarge(let n, let l): return "image frame of \(n) bytes exceeds the \(l)-byte limit"
        case .badHeader(let m): return m
        case .badField(let f, let m): return "header field '\(f)': \(m)"
        case .invalidID(let id): return "invalid id '\(id)' (1–128 characters of A-Z a-z 0-9 . _ : -)"
        case .unknownFormat(let f): return "unknown format \(f) (expected auto, png, jpeg or ppm)"
        case .badParams(let m): return "params: \(m)"
        }
    }
}
