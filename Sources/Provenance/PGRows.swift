// Records ↔ PostgreSQL rows through their Codable form, so the Postgres store reads and writes the
// same JobRecord/RefusalRecord types as GRDB does for SQLite: a row becomes a JSON object (snake_case
// columns, numbers by column type, JSON-valued text columns parsed, bytea as base64) for
// JSONDecoder, and a record's JSON encoding becomes column values.
import Foundation
import JobModel

enum PGRowDecoder {
    /// Text columns that hold JSON values (nested Codable properties).
    static let jsonColumns: Set<String> = ["params", "requested_params", "top_k", "timings", "caption_tokens", "stages_run"]

    static func decode<T: Decodable>(_ type: T.Type, columns: [String], types: [UInt32], values: [PGValue]) throws -> T {
        var object: [String: Any] = [:]
        for (i, name) in columns.enumerated() {
            switch values[i] {
            case .null:
                continue
            case .bytes(let d):
                object[name] = d.base64EncodedString()
            case .text(let s):
                switch types[i] {
                case PGType.bool: object[name] = (s == "t")
                case PGType.int2, PGType.int4, PGType.int8: object[name] = Int64(s) ?? 0
                case PGType.float4, PGType.float8, PGType.numeric: object[name] = Double(s) ?? 0
                default:
                    object[name] = jsonColumns.contains(name) ? ((try? JSONSerialization.jsonObject(with: Data(s.utf8), options: [.fragmentsAllowed])) ?? s) : s
                }
            }
        }
        let data = try JSONSerialization.data(withJSONObject: object)
        let decoder = JSONDecoder()
        decoder.keyDecodingStrategy = .convertFromSnakeCase
        decoder.dateDecodingStrategy = .secondsSince1970
        do { return try decoder.decode(type, from: data) } catch {
            throw StoreError.failed("cannot read a \(type) row: \(error)")
        }
    }
}

enum PGRowEncoder {
    /// Column/value pairs of a record: scalars as text, nested values as JSON text, Data as bytea.
    static func values<T: Encodable>(_ record: T, skipping: Set<String>) throws -> [(column: String, value: PGValue)] {
        let encoder = JSONEncoder()
        encoder.keyEncodingStrategy = .convertToSnakeCase
        encoder.dateEncodingStrategy = .secondsSince1970
        encoder.dataEncodingStrategy = .base64
        guard let object = try JSONSerialization.jsonObject(with: encoder.encode(record)) as? [String: Any] else {
            throw StoreError.failed("\(T.self) does not encode as an object")
        }
        var out: [(String, PGValue)] = []
        for (key, v) in object.sorted(by: { $0.key < $1.key }) where !skipping.contains(key) {
            if binaryColumns.contains(key), let s = v as? String {
                out.append((key, .bytes(Data(base64Encoded: s) ?? Data())))
            } else if v is NSNull {
                out.append((key, .null))
            } else if let n = v as? NSNumber, !PGRowDecoder.jsonColumns.contains(key) {
                switch String(cString: n.objCType) {
                case "c": out.append((key, .text(n.boolValue ? "true" : "false")))
                case "d", "f": out.append((key, .text("\(n.doubleValue)")))  // shortest text that reads back exactly
                default: out.append((key, .text(n.stringValue)))
                }
            } else if let s = v as? String, !PGRowDecoder.jsonColumns.contains(key) {
                out.append((key, .text(s)))
            } else {
                let data = try JSONSerialization.data(withJSONObject: v, options: [.fragmentsAllowed, .sortedKeys, .withoutEscapingSlashes])
                out.append((key, .text(String(decoding: data, as: UTF8.self))))
            }
        }
        return out
    }

    static let binaryColumns: Set<String> = ["input", "purified"]

    /// Every job column but the blobs.
    static let jobListColumns = """
        seq, id, status, reason, error, node, received_at, started_at, finished_at, run_id, finished_run_id, attempts, suspect,
        stage, mode, peer, input_sha256, input_format, input_size, width, height, label, meta, requested_params, params, cost,
        stages_run, caption, caption_tokens, caption_score, purified_sha256, pred_label, pred_index, confidence, top_k,
        consistency, timings
        """
}
