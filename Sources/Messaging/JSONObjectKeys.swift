// Finds repeated keys in JSON objects. Foundation's parser keeps the last of two equal keys without a
import Foundation
// word, so {"id":"a","id":"b"} would pass as "b" — a header whose meaning depends on which parser
// reads it. lgap refuses such headers; this scanner walks the text once (strings, escapes, nesting)
// and reports the first key that repeats within one object.
enum JSONObjectKeys {
    /// The first key that appears twice in the same object, or nil. Assumes `bytes` is valid JSON
    /// (call it after a successful parse).
    static func firstDuplicate(in bytes: [UInt8]) -> String? {
        var stack: [Set<[UInt8]>?] = []  // per open container: its keys (objects) or nil (arrays)
        var expectKey: [Bool] = []
        var i = 0
        let n = bytes.count
        func readString() -> [UInt8] {
            // bytes[i] == '"'; returns the raw (still escaped) content, leaves i after the closing quote.
            i += 1
            let start = i
            while i < n && bytes[i] != UInt8(ascii: "\"") {
                i += bytes[i] == UInt8(ascii: "\\") ? 2 : 1
            }
            let s = Array(bytes[start..<min(i, n)])
            i += 1
            return s
        }
        while i < n {
            let c = bytes[i]
            switch c {
            case UInt8(ascii: "{"):
                stack.append([]); expectKey.append(true); i += 1
            case UInt8(ascii: "["):
                stack.append(nil); expectKey.append(false); i += 1
            case UInt8(ascii: "}"), UInt8(ascii: "]"):
                stack.removeLast(); expectKey.removeLast(); i += 1
            case UInt8(ascii: ","):
                if let top = expectKey.indices.last, stack[top] != nil { expectKey[top] = true }
                i += 1
            case UInt8(ascii: ":"):
                if let top = expectKey.indices.last { expectKey[top] = false }
                i += 1
            case UInt8(ascii: "\""):
                let top = stack.indices.last
                let s = readString()
                if let top, expectKey[top], stack[top] != nil {
                    // Escapes spell the same key several ways ("a" and "\u0061"): compare decoded text.
                    let key = Array(decodedKey(s).utf8)
                    if stack[top]!.contains(key) { return String(decoding: key, as: UTF8.self) }
                    stack[top]!.insert(key)
                }
            default:
                i += 1
            }
        }
        return nil
    }

    private static func decodedKey(_ raw: [UInt8]) -> String {
        guard raw.contains(UInt8(ascii: "\\")) else { return String(decoding: raw, as: UTF8.self) }
        let quoted = [UInt8(ascii: "\"")] + raw + [UInt8(ascii: "\"")]
        return (try? JSONDecoder().decode(String.self, from: Data(quoted))) ?? String(decoding: raw, as: UTF8.self)
    }
}
