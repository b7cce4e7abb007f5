// `--db` for every lgapctl command that reads the store: a SQLite path or a postgres:// URL. Unset:
// $LGAP_DB, then the `database` of lgapd's configuration (Locations.config), then lgapd's default.
import ArgumentParser
import Foundation
import Locations
import Provenance
import Service

struct StoreOptions: ParsableArguments {
    @Option(help: "Provenance store: a SQLite path or postgres://user@host:port/db (default: $LGAP_DB, else lgapd's configured one).")
    var db: String?

    @Option(name: .customLong("password-file"), help: "PostgreSQL password file (default: PGPASSWORD, ~/.pgpass).")
    var passwordFile: String?

    var location: String {
        if let db { return db }
        if let env = Locations.databaseOverride { return env }
        if let path = Locations.config, let c = try? DaemonConfig.load(path: path) { return c.database }
        return DaemonConfig().database
    }

    func openForQueries() throws -> JobStore {
        do { return try StoreLocation(location).openForQueries(passwordFile: passwordFile) } catch {
            throw ValidationError("\(error)")
        }
    }

    func openForMaintenance() throws -> JobStore {
        do { return try StoreLocation(location).openForMaintenance(passwordFile: passwordFile) } catch {
            throw ValidationError("\(error)")
        }
    }
}
