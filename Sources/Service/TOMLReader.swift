// Reads typed keys out of TOML sections and remembers which it saw, so unknown keys are reported.
import TOMLKit

struct TOMLReader {
    let table: TOMLTable
    let path: String
    var seenSections: Set<String> = []

    init(table: TOMLTable, path: String) {
        self.table = table
        self.path = path
    }

    struct Section {
        let table: TOMLTable?
        let name: String
        let path: String
        var seen: Set<String> = []

        func fail(_ key: String, _ m: String) -> ConfigError { ConfigError(message: "\(path): [\(name)] \(key) \(m)") }

        mutating func value(_ key: String) -> TOMLValueConvertible? {
            seen.insert(key)
            return table?[key]
        }

        mutating func string(_ key: String, oneOf allowed: [String]? = nil) throws -> String? {
            guard let v = value(key) else { return nil }
            guard let s = v.string else {
                if key == "seed" { return nil }
                throw fail(key, "must be a string")
            }
            if let allowed, !allowed.contains(s) { throw fail(key, "must be one of \(allowed.joined(separator: ", ")), got '\(s)'") }
            return s
        }

        mutating func int(_ key: String, min lo: Int? = nil, max hi: Int? = nil) throws -> Int? {
            guard let v = value(key) else { return nil }
            guard let i = v.int else { throw fail(key, "must be an integer") }
            if let lo, i < lo { throw fail(key, "must be ≥ \(lo), got \(i)") }
            if let hi, i > hi { throw fail(key, "must be ≤ \(hi), got \(i)") }
            return i
        }

        mutating func double(_ key: String, min lo: Double? = nil) throws -> Double? {
            guard let v = value(key) else { return nil }
            guard let d = v.double ?? v.int.map(Double.init) else { throw fail(key, "must be a number") }
            guard d.isFinite else { throw fail(key, "must be finite") }
            if let lo, d < lo { throw fail(key, "must be ≥ \(lo), got \(d)") }
            return d
        }

        mutating func bool(_ key: String) throws -> Bool? {
            guard let v = value(key) else { return nil }
            guard let b = v.bool else { throw fail(key, "must be true or false") }
            return b
        }
    }

    mutating func section(_ name: String, _ body: (inout Section) throws -> Void) throws {
        seenSections.insert(name)
        let t = table[name]
        if t != nil && t?.table == nil { throw ConfigError(message: "\(path): [\(name)] must be a table") }
        var s = Section(table: t?.table, name: name, path: path)
        try body(&s)
        if let keys = t?.table?.keys {
            for k in keys where !s.seen.contains(k) { throw ConfigError(message: "\(path): unknown key '\(k)' in [\(name)]") }
        }
    }

    func finish() throws {
        for k in table.keys where !seenSections.contains(k) { throw ConfigError(message: "\(path): unknown section or key '\(k)'") }
    }
}
