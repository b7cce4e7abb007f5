// The throwaway PostgreSQL server of the tests (scripts/test-postgres.sh, started by `make test` and
// named in $LGAP_TEST_POSTGRES): a database of its own per test, and stopping/starting the server to
// test what a store outage does to lgapd.
import Foundation
import Provenance

#if canImport(Glibc)
    import Glibc
#endif

/// A database of its own on the test server, dropped afterwards.
public struct TestDatabase: Sendable {
    public let url: PostgresURL
    let admin: String

    /// The server the tests may use, or nil when none is configured.
    public static var serverURL: String? { ProcessInfo.processInfo.environment["LGAP_TEST_POSTGRES"] }

    public init(adminURL: String) throws {
        admin = adminURL
        var u = try PostgresURL(adminURL)
        u.database = "t_" + UUID().uuidString.replacingOccurrences(of: "-", with: "").prefix(16).lowercased()
        url = u
        try Self.psql(adminURL, "CREATE DATABASE \(u.database)")
    }

    /// The database's URL (no password: the test server trusts loopback).
    public var urlText: String { url.redacted }

    public func drop() { try? Self.psql(admin, "DROP DATABASE IF EXISTS \(url.database) WITH (FORCE)") }

    public static func psql(_ url: String, _ sql: String) throws {
        let status = try run(["/usr/bin/env", "psql", url, "-q", "-v", "ON_ERROR_STOP=1", "-c", sql])
        guard status == 0 else { throw DaemonError(description: "psql: \(sql) failed") }
    }
}

/// Stops and starts the test server (its data directory and binaries from $LGAP_TEST_PGDATA and
/// $LGAP_TEST_PGBIN; its settings live in postgresql.conf, so a plain `pg_ctl start` brings it back on
/// the same port). As root, the server runs as `postgres`, as the script started it.
public enum TestPostgresServer {
    static var environment: (data: String, bin: String)? {
        let env = ProcessInfo.processInfo.environment
        guard let data = env["LGAP_TEST_PGDATA"], let bin = env["LGAP_TEST_PGBIN"] else { return nil }
        return (data, bin)
    }

    public static var controllable: Bool { environment != nil }

    /// `pg_ctl stop -m MODE`: every client connection is cut ("immediate": as a crash would).
    public static func stop(mode: String = "fast") throws { try pgctl(["stop", "-m", mode, "-w"]) }

    public static func start() throws { try pgctl(["start", "-w", "-t", "60", "-l", (environment?.data ?? "") + "/../server.log"]) }

    static func pgctl(_ arguments: [String]) throws {
        guard let (data, bin) = environment else {
            throw DaemonError(description: "LGAP_TEST_PGDATA/LGAP_TEST_PGBIN not set (scripts/test-postgres.sh start)")
        }
        let command = [bin + "/pg_ctl", "-D", data] + arguments
        let status = try run(getuid() == 0 ? ["/usr/sbin/runuser", "-u", "postgres", "--"] + command : command)
        guard status == 0 else { throw DaemonError(description: "pg_ctl \(arguments.joined(separator: " ")) exited \(status)") }
    }
}

/// Runs a command to its end with stdio on /dev/null. posix_spawn + waitpid rather than Process: pg_ctl
/// leaves a server running that Foundation's exit monitoring (Process.waitUntilExit) does not survive.
private func run(_ argv: [String]) throws -> Int32 {
    var actions = posix_spawn_file_actions_t()
    posix_spawn_file_actions_init(&actions)
    defer { posix_spawn_file_actions_destroy(&actions) }
    for fd: Int32 in 0...2 { posix_spawn_file_actions_addopen(&actions, fd, "/dev/null", fd == 0 ? O_RDONLY : O_WRONLY, 0) }
    var cArgs = argv.map { strdup($0) } + [nil]
    defer { for a in cArgs { free(a) } }
    var pid: pid_t = 0
    let rc = posix_spawn(&pid, argv[0], &actions, nil, &cArgs, environ)
    guard rc == 0 else { throw DaemonError(description: "cannot run \(argv[0]): \(String(cString: strerror(rc)))") }
    var status: Int32 = 0
    while waitpid(pid, &status, 0) < 0 && errno == EINTR {}
    return (status & 0x7f) == 0 ? (status >> 8) & 0xff : -(status & 0x7f)
}
