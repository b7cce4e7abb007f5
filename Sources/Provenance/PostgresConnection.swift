// The single door to libpq: connections, parameterised statements (text parameters, binary for
// bytea), results as rows of typed values, and errors that carry the SQLSTATE, the server's message
// and the statement. A connection is used by one thread at a time; PostgresPool lends them out.
import CPostgres
import Foundation

/// postgres://user@host:port/dbname[?options]: the password comes from PGPASSWORD or a password file,
/// never from the URL that is logged (a password in the URL is accepted but redacted in logs).
public struct PostgresURL: Sendable, Equatable {
    public var user: String
    public var host: String
    public var port: Int
    public var database: String
    public var password: String?
    /// Extra libpq keywords from the query string (sslmode=…, connect_timeout=…, host=/socket/dir).
    public var options: [String: String]

    public init(_ text: String) throws {
        guard let c = URLComponents(string: text), c.scheme == "postgres" || c.scheme == "postgresql" else {
            throw StoreError.failed("not a postgres:// URL")
        }
        user = c.user.flatMap { $0.removingPercentEncoding } ?? NSUserName()
        password = c.password.flatMap { $0.removingPercentEncoding }
        host = c.host.flatMap { $0.removingPercentEncoding } ?? ""
        port = c.port ?? 5432
        let path = c.path.hasPrefix("/") ? String(c.path.dropFirst()) : c.path
        database = path.isEmpty ? user : path
        var opts: [String: String] = [:]
        for q in c.queryItems ?? [] { opts[q.name] = q.value ?? "" }
        options = opts
        if host.isEmpty && opts["host"] == nil { host = "localhost" }
    }

    /// The URL without its password.
    public var redacted: String {
        let h = host.isEmpty ? (options["host"] ?? "") : host
        let q = options.isEmpty ? "" : "?" + options.sorted { $0.key < $1.key }.map { "\($0.key)=\($0.value)" }.joined(separator: "&")
        return "postgres://\(user)@\(h):\(port)/\(database)\(q)"
    }

    /// libpq keyword/value pairs.
    func parameters(password: String?) -> [(String, String)] {
        var kv: [(String, String)] = [
            ("user", user), ("port", String(port)), ("dbname", database), ("application_name", "lgap"),
            ("connect_timeout", "5")
        ]
        if !host.isEmpty { kv.append(("host", host)) }
        if let password { kv.append(("password", password)) }
        for (k, v) in options { kv.removeAll { $0.0 == k }; kv.append((k, v)) }
        return kv
    }
}

/// A value to bind or a value read back (text protocol, bytea as bytes).
public enum PGValue: Sendable, Equatable {
    case null
    case text(String)
    case bytes(Data)

    public init(_ s: String?) { self = s.map(PGValue.text) ?? .null }
    public init(_ i: Int?) { self = i.map { .text(String($0)) } ?? .null }
    public init(_ i: Int64?) { self = i.map { .text(String($0)) } ?? .null }
    public init(_ d: Double?) { self = d.map { .text(String($0)) } ?? .null }
    public init(_ b: Bool) { self = .text(b ? "true" : "false") }
    public init(_ d: Data?) { self = d.map(PGValue.bytes) ?? .null }
}

/// One result: column names, their type OIDs and the rows' values.
public struct PGResult: Sendable {
    public var columns: [String]
    public var types: [UInt32]
    public var rows: [[PGValue]]
    /// Rows the statement changed (UPDATE/INSERT/DELETE).
    public var affected: Int
}

final class PostgresConnection: @unchecked Sendable {
    private var conn: OpaquePointer?
    let url: PostgresURL
    let password: String?

    init(url: PostgresURL, password: String?) throws {
        self.url = url
        self.password = password
        try connect()
    }

    deinit { PQfinish(conn) }

    private func connect() throws {
        PQfinish(conn)
        let kv = url.parameters(password: password)
        let keys = kv.map { strdup($0.0) } + [nil]
        let values = kv.map { strdup($0.1) } + [nil]
        defer { (keys + values).forEach { free($0) } }
        conn = keys.withUnsafeBufferPointer { k in
            values.withUnsafeBufferPointer { v in
                PQconnectdbParams(
                    UnsafeRawPointer(k.baseAddress!).assumingMemoryBound(to: UnsafePointer<CChar>?.self),
                    UnsafeRawPointer(v.baseAddress!).assumingMemoryBound(to: UnsafePointer<CChar>?.self), 0)
            }
        }
        guard let conn, PQstatus(conn) == CONNECTION_OK else {
            let message = conn.map { String(cString: PQerrorMessage($0)) } ?? "out of memory"
            throw StoreError.unavailable("cannot connect to \(url.redacted): \(message.trimmingCharacters(in: .whitespacesAndNewlines))")
        }
        // Notices (e.g. "relation already exists, skipping") are not for stderr.
        PQsetNoticeProcessor(conn, { _, _ in }, nil)
    }

    var isBroken: Bool { conn == nil || PQstatus(conn) != CONNECTION_OK }

    /// Runs several statements without parameters (migrations).
    func executeScript(_ sql: String) throws {
        if isBroken { try connect() }
        let res = PQexec(conn, sql)
        defer { PQclear(res) }
        let status = PQresultStatus(res)
        guard status == PGRES_COMMAND_OK || status == PGRES_TUPLES_OK else { throw error(res, sql) }
    }

    /// Runs one statement with positional parameters ($1, $2, …).
    @discardableResult
    func execute(_ sql: String, _ params: [PGValue] = []) throws -> PGResult {
        if isBroken { try connect() }
        var buffers: [UnsafeMutablePointer<CChar>?] = []
        var lengths: [Int32] = []
        var formats: [Int32] = []
        for p in params {
            switch p {
            case .null:
                buffers.append(nil); lengths.append(0); formats.append(0)
            case .text(let s):
                buffers.append(strdup(s)); lengths.append(0); formats.append(0)
            case .bytes(let d):
                let b = UnsafeMutablePointer<CChar>.allocate(capacity: max(d.count, 1))
                d.withUnsafeBytes { raw in if d.count > 0 { memcpy(b, raw.baseAddress!, d.count) } }
                buffers.append(b); lengths.append(Int32(d.count)); formats.append(1)
            }
        }
        defer { buffers.forEach { $0?.deallocate() } }
        let res: OpaquePointer? = buffers.withUnsafeBufferPointer { b in
            PQexecParams(
                conn, sql, Int32(params.count), nil,
                UnsafeRawPointer(b.baseAddress).map { $0.assumingMemoryBound(to: UnsafePointer<CChar>?.self) },
                lengths, formats, 0)
        }
        defer { PQclear(res) }
        let status = PQresultStatus(res)
        guard status == PGRES_COMMAND_OK || status == PGRES_TUPLES_OK else {
            throw error(res, sql)
        }
        return Self.read(res)
    }

    private func error(_ res: OpaquePointer?, _ sql: String) -> StoreError {
        let state = res.flatMap { PQresultErrorField($0, Int32(UInt8(ascii: "C"))) }.map { String(cString: $0) } ?? ""
        let message = (res.map { String(cString: PQresultErrorMessage($0)) } ?? String(cString: PQerrorMessage(conn)))
            .trimmingCharacters(in: .whitespacesAndNewlines)
        let statement = sql.split(separator: "\n").first.map(String.init) ?? sql
        let text = "\(message) [SQLSTATE \(state.isEmpty ? "-" : state)] in: \(statement.trimmingCharacters(in: .whitespaces))"
        // Connection trouble (08…), no room (53…), shutdown (57P…), and a lost connection are
        // transient; everything else is a bug or bad data.
        if isBroken || state.hasPrefix("08") || state.hasPrefix("53") || state.hasPrefix("57P") || state == "40001" || state == "40P01" {
            return .unavailable(text)
        }
        return .failed(text)
    }

    private static func read(_ res: OpaquePointer?) -> PGResult {
        let nCols = Int(PQnfields(res)), nRows = Int(PQntuples(res))
        let columns = (0..<nCols).map { String(cString: PQfname(res, Int32($0))) }
        let types = (0..<nCols).map { UInt32(PQftype(res, Int32($0))) }
        var rows: [[PGValue]] = []
        rows.reserveCapacity(nRows)
        for r in 0..<nRows {
            var row: [PGValue] = []
            row.reserveCapacity(nCols)
            for c in 0..<nCols {
                if PQgetisnull(res, Int32(r), Int32(c)) != 0 { row.append(.null); continue }
                let p = PQgetvalue(res, Int32(r), Int32(c))!
                if types[c] == PGType.bytea {
                    row.append(.bytes(decodeByteaHex(p, Int(PQgetlength(res, Int32(r), Int32(c))))))
                } else {
                    row.append(.text(String(cString: p)))
                }
            }
            rows.append(row)
        }
        let affected = Int(String(cString: PQcmdTuples(res))) ?? 0
        return PGResult(columns: columns, types: types, rows: rows, affected: affected)
    }

    /// bytea's text form: "\x" then two hex digits a byte.
    private static func decodeByteaHex(_ p: UnsafePointer<CChar>, _ length: Int) -> Data {
        guard length >= 2 else { return Data() }
        func nibble(_ c: CChar) -> UInt8 {
            let u = UInt8(bitPattern: c)
            switch u {
            case 0x30...0x39: return u - 0x30
            case 0x61...0x66: return u - 0x61 + 10
            default: return u - 0x41 + 10
            }
        }
        var out = Data(count: (length - 2) / 2)
        out.withUnsafeMutableBytes { raw in
            let b = raw.bindMemory(to: UInt8.self)
            for i in 0..<b.count { b[i] = nibble(p[2 + 2 * i]) << 4 | nibble(p[3 + 2 * i]) }
        }
        return out
    }
}

/// Type OIDs the stores read.
enum PGType {
    static let bool: UInt32 = 16, bytea: UInt32 = 17, int8: UInt32 = 20, int2: UInt32 = 21, int4: UInt32 = 23
    static let float4: UInt32 = 700, float8: UInt32 = 701, numeric: UInt32 = 1700
}

/// A few connections lent to one thread at a time (libpq connections are not thread-safe).
final class PostgresPool: @unchecked Sendable {
    private let url: PostgresURL
    private let password: String?
    private let maxConnections: Int
    private var idle: [PostgresConnection] = []
    private var open = 0
    private let cond = NSCondition()

    init(url: PostgresURL, password: String?, maxConnections: Int) throws {
        self.url = url
        self.password = password
        self.maxConnections = maxConnections
        idle.append(try PostgresConnection(url: url, password: password))
        open = 1
    }

    func with<T>(_ body: (PostgresConnection) throws -> T) throws -> T {
        let c = try borrow()
        defer { giveBack(c) }
        return try body(c)
    }

    /// Runs `body` inside BEGIN … COMMIT (ROLLBACK on error).
    func transaction<T>(_ body: (PostgresConnection) throws -> T) throws -> T {
        try with { c in
            try c.execute("BEGIN")
            do {
                let r = try body(c)
                try c.execute("COMMIT")
                return r
            } catch {
                _ = try? c.execute("ROLLBACK")
                throw error
            }
        }
    }

    private func borrow() throws -> PostgresConnection {
        cond.lock()
        while idle.isEmpty && open >= maxConnections { cond.wait() }
        if let c = idle.popLast() { cond.unlock(); return c }
        open += 1
        cond.unlock()
        do { return try PostgresConnection(url: url, password: password) } catch {
            cond.lock(); open -= 1; cond.signal(); cond.unlock()
            throw error
        }
    }

    private func giveBack(_ c: PostgresConnection) {
        cond.lock()
        if c.isBroken { open -= 1 } else { idle.append(c) }
        cond.signal()
        cond.unlock()
    }
}
