// `--db` everywhere: a path (SQLite, the one-node default) or a postgres:// URL (the fleet store).
import Foundation

public enum StoreLocation: Sendable, Equatable, CustomStringConvertible {
    case sqlite(path: String)
    case postgres(PostgresURL)

    public init(_ text: String) throws {
        if text.hasPrefix("postgres://") || text.hasPrefix("postgresql://") {
            self = .postgres(try PostgresURL(text))
        } else {
            guard !text.isEmpty else { throw StoreError.failed("empty database location") }
            self = .sqlite(path: text)
        }
    }

    /// Printable, never with a password.
    public var description: String {
        switch self {
        case .sqlite(let p): return p
        case .postgres(let u): return u.redacted
        }
    }

    /// Opens the store for the daemon (creating and migrating it).
    public func openForDaemon(durability: SQLiteJobStore.Durability, passwordFile: String?) throws -> JobStore {
        switch self {
        case .sqlite(let path): return try SQLiteJobStore(path: path, durability: durability)
        case .postgres(let url): return try PostgresJobStore(url: url, passwordFile: passwordFile, migrate: true)
        }
    }

    /// Opens the store for queries (lgapctl).
    public func openForQueries(passwordFile: String? = nil) throws -> JobStore {
        switch self {
        case .sqlite(let path): return try SQLiteJobStore(readingAt: path)
        case .postgres(let url): return try PostgresJobStore(url: url, passwordFile: passwordFile, migrate: false)
        }
    }

    /// Opens the store for an operator's writes (lgapctl retry): migrates nothing, writes allowed.
    public func openForMaintenance(passwordFile: String? = nil) throws -> JobStore {
        switch self {
        case .sqlite(let path):
            guard FileManager.default.fileExists(atPath: path) else { throw StoreError.failed("no database at \(path)") }
            return try SQLiteJobStore(path: path, durability: .full)
        case .postgres(let url): return try PostgresJobStore(url: url, passwordFile: passwordFile, migrate: false)
        }
    }
}
