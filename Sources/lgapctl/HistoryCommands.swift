// Operator queries over the provenance store: history, show, stats, export, retry, nodes. They work
// on a one-node SQLite file or a fleet's PostgreSQL alike (--db).
import ArgumentParser
import Foundation
import ImageIO
import JobModel
import Provenance

extension JobStatus: ExpressibleByArgument {}

/// Formats a date as ISO 8601 (UTC, milliseconds).
func isoTime(_ d: Date?) -> String {
    guard let d else { return "-" }
    let f = ISO8601DateFormatter()
    f.formatOptions = [.withInternetDateTime, .withFractionalSeconds]
    return f.string(from: d)
}

/// A job's record as the JSON operators read (blobs left out; dates ISO 8601; meta parsed).
func jsonObject(_ r: JobRecord) -> [String: Any] {
    let e = JSONEncoder()
    e.keyEncodingStrategy = .convertToSnakeCase
    var o = (try? JSONSerialization.jsonObject(with: e.encode(r))) as? [String: Any] ?? [:]
    for key in ["input", "purified", "seq"] { o[key] = nil }
    for key in ["received_at", "started_at", "finished_at"] { o[key] = nil }
    o["received_at"] = isoTime(r.receivedAt)
    if let d = r.startedAt { o["started_at"] = isoTime(d) }
    if let d = r.finishedAt { o["finished_at"] = isoTime(d) }
    o["ground_truth"] = o.removeValue(forKey: "label")
    o["label"] = o.removeValue(forKey: "pred_label")
    o["label_index"] = o.removeValue(forKey: "pred_index")
    o["timings_ms"] = o.removeValue(forKey: "timings")
    o["stages"] = o.removeValue(forKey: "stages_run")
    o["meta"] = r.meta.flatMap { try? JSONSerialization.jsonObject(with: Data($0.utf8)) }
    return o.filter { !($0.value is NSNull) }
}

func jsonObject(_ r: RefusalRecord) -> [String: Any] {
    var o: [String: Any] = [
        "status": JobStatus.rejected.rawValue, "refused_at_the_door": true, "reason": r.reason.rawValue, "error": r.error,
        "received_at": isoTime(r.receivedAt), "node": r.node, "mode": r.mode.rawValue
    ]
    if let id = r.claimedId { o["id"] = id }
    if let p = r.peer { o["peer"] = p }
    if let s = r.inputSha256 { o["input_sha256"] = s }
    if let n = r.inputSize { o["input_size"] = n }
    if let h = r.header { o["header"] = h }
    return o
}

func pad(_ s: String, _ n: Int) -> String {
    let t = Sanitize.text(s)
    return t.count >= n ? String(t.prefix(n - 1)) + " " : t + String(repeating: " ", count: n - t.count)
}

/// "2026-11-25T10:00:00Z" or a duration back from now ("30s", "10m", "2h", "1d").
func parseSince(_ s: String, option: String = "--since") throws -> Date {
    let units: [Character: Double] = ["s": 1, "m": 60, "h": 3600, "d": 86400]
    if let unit = s.last, let mult = units[unit], let n = Double(s.dropLast()) {
        return Date(timeIntervalSinceNow: -n * mult)
    }
    let f = ISO8601DateFormatter()
    if let d = f.date(from: s) { return d }
    f.formatOptions = [.withFullDate]
    if let d = f.date(from: s) { return d }
    throw ValidationError("\(option) \(s): expected ISO 8601 or a duration like 10m, 30d")
}

struct History: ParsableCommand {
    static let configuration = CommandConfiguration(abstract: "List recent jobs (and refusals at the door), newest first.")

    @OptionGroup var store: StoreOptions
    @Option(help: "Only jobs received since this time (ISO 8601, or a duration like 10m, 2h, 1d).") var since: String?
    @Option(help: "Only jobs with this status (\(JobStatus.allCases.map(\.rawValue).joined(separator: ", "))); rejected includes refusals.")
    var status: JobStatus?
    @Option(help: "Only jobs whose predicted or ground-truth label is this.") var label: String?
    @Option(help: "Only jobs of this node (fleet).") var node: String?
    @Option(help: "At most this many lines.") var limit = 50
    @Flag(help: "One JSON object per line.") var json = false

    func run() throws {
        let rows = try store.openForQueries().history(
            HistoryFilter(
                since: try since.map { try parseSince($0) }, status: status, label: label,
                node: node, limit: limit))
        if json {
            for r in rows {
                switch r {
                case .job(let j): Output.jsonLine(jsonObject(j))
                case .refusal(let f): Output.jsonLine(jsonObject(f))
                }
            }
            return
        }
        print(pad("received", 26) + pad("id", 30) + pad("status", 11) + pad("label", 12) + pad("conf", 7) + "caption / reason")
        for r in rows {
            switch r {
            case .job(let j):
                let conf = j.confidence.map { String(format: "%.3f", $0) } ?? "-"
                Output.line(
                    pad(isoTime(j.receivedAt), 26) + pad(j.id, 30) + pad(j.status.rawValue, 11) + pad(j.predLabel ?? "-", 12)
                        + pad(conf, 7) + (j.caption ?? j.reason?.rawValue ?? ""))
            case .refusal(let f):
                Output.line(
                    pad(isoTime(f.receivedAt), 26) + pad(f.claimedId ?? "(no valid id)", 30) + pad("refused", 11) + pad("-", 12)
                        + pad("-", 7) + f.reason.rawValue)
            }
        }
    }
}

struct Show: ParsableCommand {
    static let configuration = CommandConfiguration(abstract: "Everything recorded about one job (or the refusals that claimed its id).")

    @Argument var id: String
    @OptionGroup var store: StoreOptions
    @Flag(help: "JSON instead of text.") var json = false

    func run() throws {
        let s = try store.openForQueries()
        var objects: [[String: Any]] = []
        if let row = try s.job(id) {
            var obj = jsonObject(row)
            if let run = row.finishedRunId ?? row.runId {
                obj["models"] = try s.models(run: run).map { ["stage": $0.stage.rawValue, "name": $0.name, "sha256": $0.sha256, "parameters": $0.parameters] }
            }
            objects.append(obj)
        }
        objects += try s.refusals(claimedID: id).map(jsonObject)
        guard !objects.isEmpty else { throw ValidationError("no job or refusal with id \(Sanitize.text(id))") }
        for obj in objects {
            if json { Output.jsonLine(obj); continue }
            for key in obj.keys.sorted() {
                guard let v = obj[key] else { continue }
                let text =
                    (v is [Any] || v is [String: Any])
                    ? String(decoding: (try? JSONSerialization.data(withJSONObject: v, options: [.sortedKeys])) ?? Data(), as: UTF8.self) : "\(v)"
                Output.line(pad(key, 18) + text)
            }
            if objects.count > 1 { print("") }
        }
    }
}

struct Stats: ParsableCommand {
    static let configuration = CommandConfiguration(abstract: "Throughput, per-stage latency percentiles, queue high-water marks, rejects by reason.")

    @OptionGroup var store: StoreOptions
    @Option(help: "Latest finished jobs the percentiles and throughput cover.") var window = 1000
    @Flag(help: "JSON instead of text.") var json = false

    func run() throws {
        let s = try store.openForQueries()
        let counts = try s.counts()
        let recent = try s.finishedJobs(limit: window)
        var perStage: [String: [Double]] = [:]
        var latency: [Double] = []
        var perNode: [String: Int] = [:]
        for r in recent {
            for (k, v) in r.timings ?? [:] { perStage[k, default: []].append(v) }
            if let f = r.finishedAt { latency.append(f.timeIntervalSince(r.receivedAt) * 1000) }
            perNode[r.node, default: 0] += 1
        }
        let times = recent.compactMap(\.finishedAt)
        let span = (times.max().map { $0.timeIntervalSince1970 } ?? 0) - (times.min().map { $0.timeIntervalSince1970 } ?? 0)
        let throughput = span > 0 ? Double(recent.count - 1) / span : 0
        func pct(_ xs: [Double], _ p: Double) -> Double {
            guard !xs.isEmpty else { return 0 }
            let sorted = xs.sorted()
            return sorted[min(sorted.count - 1, Int((p * Double(sorted.count - 1)).rounded()))]
        }
        let stages = perStage.keys.sorted {
            (StageName(rawValue: $0).flatMap { StageName.allCases.firstIndex(of: $0) } ?? 9, $0)
                < (StageName(rawValue: $1).flatMap { StageName.allCases.firstIndex(of: $0) } ?? 9, $1)
        }
        let queues = try s.stageStats()
        let latestRun = queues.first?.runId
        let reasons = try s.reasonCounts()
        if json {
            Output.jsonLine([
                "jobs": counts, "window": recent.count, "throughput_per_s": throughput, "finished_by_node": perNode,
                "latency_ms": ["p50": pct(latency, 0.5), "p95": pct(latency, 0.95)],
                "stages_ms": Dictionary(uniqueKeysWithValues: stages.map { ($0, ["p50": pct(perStage[$0] ?? [], 0.5), "p95": pct(perStage[$0] ?? [], 0.95)]) }),
                "queues": queues.filter { $0.runId == latestRun }.map {
                    ["stage": $0.stage, "capacity": $0.capacity, "high_water": $0.highWater, "processed": $0.processed]
                },
                "reasons": reasons
            ])
            return
        }
        print("jobs: " + counts.sorted { $0.key < $1.key }.map { "\($0.key) \($0.value)" }.joined(separator: ", "))
        print(
            String(
                format: "throughput: %.2f jobs/s over the last %d finished; end-to-end latency p50 %.1f ms, p95 %.1f ms",
                throughput, recent.count, pct(latency, 0.5), pct(latency, 0.95)))
        if perNode.count > 1 {
            Output.line("finished by node: " + perNode.sorted { $0.key < $1.key }.map { "\($0.key) \($0.value)" }.joined(separator: ", "))
        }
        print("\nstage       p50 ms    p95 ms")
        for st in stages { print(pad(st, 12) + String(format: "%8.2f  %8.2f", pct(perStage[st] ?? [], 0.5), pct(perStage[st] ?? [], 0.95))) }
        if let latestRun {
            print("\nqueues (run \(latestRun))   capacity  high-water  processed")
            for q in queues where q.runId == latestRun {
                print(pad(q.stage, 24) + String(format: "%8d  %10d  %9d", q.capacity, q.highWater, q.processed))
            }
        }
        print(
            "\nrefused/rejected/failed by reason: "
                + (reasons.isEmpty ? "none" : reasons.sorted { $0.value > $1.value }.map { "\($0.key) \($0.value)" }.joined(separator: ", ")))
    }
}

struct Export: ParsableCommand {
    static let configuration = CommandConfiguration(
        abstract: "Write a job's input and purified images as PNG.",
        discussion: "Refuses to overwrite an existing file unless --force, and never follows a symbolic link at the destination.")

    @Argument var id: String
    @OptionGroup var store: StoreOptions
    @Option(help: "PNG file for the input image.") var input: String?
    @Option(help: "PNG file for the purified image.") var purified: String?
    @Flag(help: "Replace existing files (still never through a symbolic link).") var force = false

    func run() throws {
        guard input != nil || purified != nil else { throw ValidationError("give --input and/or --purified") }
        guard let row = try store.openForQueries().job(id) else { throw ValidationError("no job with id \(Sanitize.text(id))") }
        if let input {
            guard let bytes = row.input else { throw ValidationError("job \(id) has no stored input") }
            let png = try ImageCodec.encodePNG(try ImageCodec.decode([UInt8](bytes), limits: ImageLimits(maxSide: 65535, maxPixels: 1 << 28)))
            try SafeFile.write(png, to: input, replacing: force)
            print("wrote \(Sanitize.text(input))")
        }
        if let purified {
            guard let png = row.purified else {
                throw ValidationError("job \(id) has no stored purified image (not finished, or keep_purified = false)")
            }
            try SafeFile.write([UInt8](png), to: purified, replacing: force)
            print("wrote \(Sanitize.text(purified))")
        }
    }
}

struct Retry: ParsableCommand {
    static let configuration = CommandConfiguration(
        abstract: "Re-queue failed jobs (by id, or all with --status failed); a running lgapd picks them up.",
        discussion: "Attempts and suspicion are cleared: a poison job that crashes lgapd again is isolated and failed again.")

    @Argument(help: "Job ids.") var ids: [String] = []
    @Option(help: "Every job with this status (only failed can be re-queued).") var status: JobStatus?
    @OptionGroup var store: StoreOptions

    func validate() throws {
        if let status, status != .failed { throw ValidationError("only failed jobs can be re-queued (--status failed)") }
        if ids.isEmpty == (status == nil) { throw ValidationError("give job ids or --status failed (not both)") }
    }

    func run() throws {
        let n = try store.openForMaintenance().retry(ids: ids.isEmpty ? nil : ids, node: "")
        print("re-queued \(n) failed job(s)")
        if n < ids.count { Output.stderr("\(ids.count - n) id(s) were not failed jobs (unknown, or not failed)") }
    }
}

struct Nodes: ParsableCommand {
    static let configuration = CommandConfiguration(abstract: "The nodes writing to this store: heartbeat, state, running jobs, throughput.")

    @OptionGroup var store: StoreOptions
    @Flag(help: "One JSON object per line.") var json = false

    func run() throws {
        let rows = try store.openForQueries().nodes()
        if json {
            for n in rows {
                Output.jsonLine([
                    "node": n.name, "state": n.state ?? "-", "heartbeat_at": isoTime(n.heartbeatAt),
                    "heartbeat_age_s": n.heartbeatAt.map { Date().timeIntervalSince($0) } ?? -1, "running": n.running,
                    "finished_this_run": n.finished, "finished_last_minute": n.finishedLastMinute, "owned_unfinished": n.owned,
                    "host": n.host ?? "-", "pid": n.pid ?? 0
                ])
            }
            return
        }
        print(pad("node", 20) + pad("state", 11) + pad("heartbeat", 12) + pad("running", 9) + pad("jobs/min", 10) + pad("unfinished", 11) + "host (pid)")
        for n in rows {
            let age = n.heartbeatAt.map { String(format: "%.1fs ago", Date().timeIntervalSince($0)) } ?? "never"
            Output.line(
                pad(n.name, 20) + pad(n.state ?? "-", 11) + pad(age, 12) + pad("\(n.running)", 9) + pad("\(n.finishedLastMinute)", 10)
                    + pad("\(n.owned)", 11) + "\(n.host ?? "-") (\(n.pid.map(String.init) ?? "-"))")
        }
    }
}
