// lgapctl backup / prune: the store's upkeep, safe while lgapd runs. A backup is one consistent
// snapshot (SQLite: VACUUM INTO); pruning deletes finished jobs (or only their images) in small
// batches, so the daemon's commits never wait long.
import ArgumentParser
import Foundation
import JobModel
import Provenance

struct Backup: ParsableCommand {
    static let configuration = CommandConfiguration(
        abstract: "Write a consistent copy of the store to DEST while lgapd runs (SQLite; PostgreSQL: use pg_dump).",
        discussion: "DEST must not exist. The copy is one complete file (no WAL), restorable by pointing --db at it.")

    @Argument(help: "The backup file to create.") var destination: String
    @OptionGroup var store: StoreOptions

    func run() throws {
        let t0 = Date()
        do { try store.openForQueries().backup(to: destination) } catch { throw ValidationError("\(error)") }
        let size = (try? FileManager.default.attributesOfItem(atPath: destination)[.size] as? Int) ?? 0
        print(String(format: "backed up to %@ (%.1f MiB, %.1f s)", destination, Double(size) / 1_048_576, Date().timeIntervalSince(t0)))
    }
}

struct Prune: ParsableCommand {
    static let configuration = CommandConfiguration(
        abstract: "Delete finished jobs (or only their images) finished before a horizon; safe while lgapd runs.",
        discussion: "Unfinished jobs are never touched. --status rejected also deletes refusals at the door received before the horizon.")

    @Option(name: .customLong("older-than"), help: "Horizon: a duration back from now (30d, 12h) or an ISO 8601 time.")
    var olderThan: String
    @Option(help: "Only jobs with this final status (repeatable: done, rejected, failed; default all three).") var status: [JobStatus] = []
    @Flag(name: .customLong("blobs-only"), help: "Keep the rows (provenance, hashes, results); drop input and purified images.")
    var blobsOnly = false
    @Flag(help: "Give the freed space back to the file system afterwards (VACUUM; SQLite rewrites the file).") var vacuum = false
    @Option(help: "Rows per transaction.") var batch = 500
    @OptionGroup var store: StoreOptions

    func validate() throws {
        if let s = status.first(where: { !$0.isFinal }) {
            throw ValidationError("--status \(s.rawValue): only finished jobs are pruned (done, rejected, failed)")
        }
        if batch < 1 { throw ValidationError("--batch must be at least 1") }
    }

    func run() throws {
        let before = try parseSince(olderThan, option: "--older-than")
        let s = try store.openForMaintenance()
        let request = PruneRequest(
            before: before, statuses: status.isEmpty ? [.done, .rejected, .failed] : Set(status), action: blobsOnly ? .dropImages : .deleteRows,
            limit: batch)
        var total = 0
        while true {
            let n = try s.prune(request)
            total += n
            if n == 0 { break }
        }
        print("\(blobsOnly ? "dropped the images of" : "deleted") \(total) row(s) finished before \(isoTime(before))")
        if vacuum { try s.vacuum() }
    }
}
