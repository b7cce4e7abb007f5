// Operator queries over lgapd's provenance database: history, show, stats, export.
import ArgumentParser
import Foundation
import ImageIO
import Provenance

/// Formats epoch seconds as ISO 8601 (UTC).
func isoTime(_ t: Double?) -> String {
    guard let t else { return "-" }
    let f = ISO8601DateFormatter()
    f.formatOptions = [.withInternetDateTime, .withFractionalSeconds]
    return f.string(from: Date(timeIntervalSince1970: t))
}

func jsonObject(_ row: JobRow) -> [String: Any] {
    var o: [String: Any] = ["id": row.id, "status": row.status, "received_at": isoTime(row.receivedAt), "attempts": row.attempts]
    func put(_ k: String, _ v: Any?) { if let v { o[k] = v } }
    put("reason", row.reason); put("error", row.error)
    put("started_at", row.startedAt.map { isoTime($0) }); put("finished_at", row.finishedAt.map { isoTime($0) })
    put("run_id", row.runId); put("finished_run_id", row.finishedRunId); put("mode", row.mode); put("peer", row.peer)
    put("input_sha256", row.inputSha256); put("input_format", row.inputFormat); put("input_size", row.inputSize)
    put("width", row.width); put("height", row.height); put("ground_truth", row.label)
    put("meta", row.meta.flatMap { try? JSONSerialization.jsonObject(with: Data($0.utf8)) })
    put("requested_params", row.requestedParams.flatMap { try? JSONSerialization.jsonObject(with: Data($0.utf8)) })
    if let s = row.strength {
        var p: [String: Any] = ["strength": s]
        if let v = row.steps { p["steps"] = v }
        if let v = row.guidance { p["guidance"] = v }
        if let v = row.eta { p["eta"] = v }
        if let v = row.ensemble { p["ensemble"] = v }
        if let v = row.seed { p["seed"] = v }
        o["params"] = p
    }
    put("stages", row.stages.map { $0.split(separator: ",").map(String.init) })
    put("caption", row.caption)
    put("caption_tokens", row.captionTokens.flatMap { try? JSONSerialization.jsonObject(with: Data($0.utf8)) })
    put("caption_score", row.captionScore); put("purified_sha256", row.purifiedSha256)
    put("label", row.predLabel); put("label_index", row.predIndex); put("confidence", row.confidence)
    put("top_k", row.topK.flatMap { try? JSONSerialization.jsonObject(with: Data($0.utf8)) })
    put("consistency", row.consistency)
    put("timings_ms", row.timings.flatMap { try? JSONSerialization.jsonObject(with: Data($0.utf8)) })
    return o
}

struct History: ParsableCommand {
    static let configuration = CommandConfiguration(abstract: "List recent jobs, newest first.")

    @Option(help: "Database (default: lgapd's configured one).") var db: String?
    @Option(help: "Only jobs received since this time (ISO 8601, or a duration like 10m, 2h, 1d).") var since: String?
    @Option(help: "Only jobs with this status (accepted, processing, done, rejected, failed).") var status: String?
    @Option(help: "Only jobs whose predicted or ground-truth label is this.") var label: String?
    @Option(help: "At most this many jobs.") var limit = 50
    @Flag(help: "One JSON object per line.") var json = false

    func run() throws {
        let store = try JobStore(readingAt: DatabaseLocator.path(db))
        let rows = try store.history(.init(since: try since.map(parseSince), status: status, label: label, limit: limit))
        if json { rows.forEach { Output.jsonLine(jsonObject($0)) }; return }
        print(pad("received", 24) + pad("id", 28) + pad("status", 11) + pad("label", 12) + pad("conf", 7) + "caption / reason")
        for r in rows {
            let conf = r.confidence.map { String(format: "%.3f", $0) } ?? "-"
            print(pad(isoTime(r.receivedAt), 24) + pad(r.id, 28) + pad(r.status, 11) + pad(r.predLabel ?? "-", 12) + pad(conf, 7)
                  + (r.caption ?? r.reason ?? ""))
        }
    }
}

func pad(_ s: String, _ n: Int) -> String { s.count >= n ? String(s.prefix(n - 1)) + " " : s + String(repeating: " ", count: n - s.count) }

/// "2026-11-25T10:00:00Z" or a duration back from now ("30s", "10m", "2h", "1d").
func parseSince(_ s: String) throws -> Date {
    if let unit = s.last, let n = Double(s.dropLast()), "smhd".contains(unit) {
        let mult: Double = ["s": 1, "m": 60, "h": 3600, "d": 86400][String(unit)]!
        return Date(timeIntervalSinceNow: -n * mult)
    }
    let f = ISO8601DateFormatter()
    if let d = f.date(from: s) { return d }
    f.formatOptions = [.withFullDate]
    if let d = f.date(from: s) { return d }
    throw ValidationError("--since \(s): expected ISO 8601 or a duration like 10m")
}

struct Show: ParsableCommand {
    static let configuration = CommandConfiguration(abstract: "Everything recorded about one job.")

    @Argument var id: String
    @Option(help: "Database (default: lgapd's configured one).") var db: String?
    @Flag(help: "JSON instead of text.") var json = false

    func run() throws {
        let store = try JobStore(readingAt: DatabaseLocator.path(db))
        guard let row = try store.job(id) else { throw ValidationError("no job with id \(id)") }
        var obj = jsonObject(row)
        if let run = row.finishedRunId ?? row.runId {
            obj["models"] = try store.models(run: run).map { ["stage": $0.stage, "name": $0.name, "sha256": $0.sha256, "parameters": $0.parameters] }
        }
        if json { Output.jsonLine(obj); return }
        for key in obj.keys.sorted() {
            let v = obj[key]!
            let text = (v is [Any] || v is [String: Any])
                ? String(decoding: (try? JSONSerialization.data(withJSONObject: v, options: [.sortedKeys])) ?? Data(), as: UTF8.self) : "\(v)"
            print(pad(key, 18) + text)
        }
    }
}

struct Stats: ParsableCommand {
    static let configuration = CommandConfiguration(abstract: "Throughput, per-stage latency percentiles, queue high-water marks, rejects by reason.")

    @Option(help: "Database (default: lgapd's configured one).") var db: String?
    @Option(help: "Latest finished jobs the percentiles and throughput cover.") var window = 1000
    @Flag(help: "JSON instead of text.") var json = false

    func run() throws {
        let store = try JobStore(readingAt: DatabaseLocator.path(db))
        let counts = try store.counts()
        let recent = try store.finishedJobs(limit: window)
        var perStage: [String: [Double]] = [:]
        var latency: [Double] = []
        for r in recent {
            for (k, v) in r.timingsMs { perStage[k, default: []].append(v) }
            if let f = r.finishedAt { latency.append((f - r.receivedAt) * 1000) }
        }
        let span = recent.compactMap(\.finishedAt).max().flatMap { hi in recent.compactMap(\.finishedAt).min().map { hi - $0 } } ?? 0
        let throughput = span > 0 ? Double(recent.count - 1) / span : 0
        func pct(_ xs: [Double], _ p: Double) -> Double {
            guard !xs.isEmpty else { return 0 }
            let s = xs.sorted()
            return s[min(s.count - 1, Int((p * Double(s.count - 1)).rounded()))]
        }
        let order = ["decode", "caption", "purify", "classify"]
        let stages = perStage.keys.sorted { (order.firstIndex(of: $0) ?? 9, $0) < (order.firstIndex(of: $1) ?? 9, $1) }
        let queues = try store.stageStats()
        let latestRun = queues.first?.runId
        let rejects = try store.rejectReasons()
        if json {
            Output.jsonLine([
                "jobs": counts, "window": recent.count, "throughput_per_s": throughput,
                "latency_ms": ["p50": pct(latency, 0.5), "p95": pct(latency, 0.95)],
                "stages_ms": Dictionary(uniqueKeysWithValues: stages.map { ($0, ["p50": pct(perStage[$0]!, 0.5), "p95": pct(perStage[$0]!, 0.95)]) }),
                "queues": queues.filter { $0.runId == latestRun }.map { ["stage": $0.stage, "capacity": $0.capacity, "high_water": $0.highWater, "processed": $0.processed] },
                "rejects": rejects,
            ])
            return
        }
        print("jobs: " + counts.sorted { $0.key < $1.key }.map { "\($0.key) \($0.value)" }.joined(separator: ", "))
        print(String(format: "throughput: %.2f jobs/s over the last %d finished; end-to-end latency p50 %.1f ms, p95 %.1f ms",
                     throughput, recent.count, pct(latency, 0.5), pct(latency, 0.95)))
        print("\nstage       p50 ms    p95 ms")
        for s in stages { print(pad(s, 12) + String(format: "%8.2f  %8.2f", pct(perStage[s]!, 0.5), pct(perStage[s]!, 0.95))) }
        if let latestRun {
            print("\nqueues (run \(latestRun))   capacity  high-water  processed")
            for q in queues where q.runId == latestRun {
                print(pad(q.stage, 24) + String(format: "%8d  %10d  %9d", q.capacity, q.highWater, q.processed))
            }
        }
        print("\nrejected/failed by reason: " + (rejects.isEmpty ? "none" : rejects.sorted { $0.value > $1.value }.map { "\($0.key) \($0.value)" }.joined(separator: ", ")))
    }
}

struct Export: ParsableCommand {
    static let configuration = CommandConfiguration(abstract: "Write a job's input and purified images as PNG.")

    @Argument var id: String
    @Option(help: "Database (default: lgapd's configured one).") var db: String?
    @Option(help: "PNG file for the input image.") var input: String?
    @Option(help: "PNG file for the purified image.") var purified: String?

    func run() throws {
        guard input != nil || purified != nil else { throw ValidationError("give --input and/or --purified") }
        let store = try JobStore(readingAt: DatabaseLocator.path(db))
        guard try store.job(id) != nil else { throw ValidationError("no job with id \(id)") }
        if let input {
            guard let bytes = try store.input(of: id) else { throw ValidationError("job \(id) has no stored input") }
            let png = try ImageCodec.encodePNG(try ImageCodec.decode(bytes, limits: ImageLimits(maxSide: 65535, maxPixels: 1 << 28)))
            try Data(png).write(to: URL(fileURLWithPath: input))
            print("wrote \(input)")
        }
        if let purified {
            guard let png = try store.purified(of: id) else { throw ValidationError("job \(id) has no stored purified image (not finished, or keep_purified = false)") }
            try Data(png).write(to: URL(fileURLWithPath: purified))
            print("wrote \(purified)")
        }
    }
}
