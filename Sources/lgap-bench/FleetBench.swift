// `lgap-bench fleet`: what the shared PostgreSQL store costs and how a fleet spreads work. One PUSH
// producer connects to every node (ZeroMQ round-robins the jobs), a subscriber per node counts results;
// timed from the first push to the last result. Runs one node on SQLite, then 1…N nodes on a fresh
// database of the given server each, so the store's cost and the spread are read side by side. On one
// machine the nodes share its cores: this measures overhead and distribution, not the scaling a
// fleet of machines gets (each node there brings its own cores).
import Digest
import Foundation
import ImageIO
import JobModel
import Messaging
import Models
import Provenance
import ServiceHarness

func runFleetBench(images count: Int, nodeCounts: [Int], threads: Int, admin: String, fullPack: Bool) throws {
    let root = repoRoot()
    let work = NSTemporaryDirectory() + "lgap-fleet-bench-\(getpid())"
    let fm = FileManager.default
    try fm.createDirectory(atPath: work, withIntermediateDirectories: true)
    defer { try? fm.removeItem(atPath: work) }
    let pack: String
    if fullPack {
        pack = root + "/models/cifar10-mini"
    } else {
        pack = work + "/pack"
        try fm.createDirectory(atPath: pack, withIntermediateDirectories: true)
        try fm.createSymbolicLink(atPath: pack + "/classifier", withDestinationPath: root + "/models/cifar10-mini/classifier")
        try fm.copyItem(atPath: root + "/models/cifar10-mini/pack.json", toPath: pack + "/pack.json")
    }
    let blobs = try benchImageFiles(count: count, work: work).map { [UInt8](try Data(contentsOf: URL(fileURLWithPath: $0))) }
    print(
        "# lgap-bench fleet — \(count) CIFAR-10 images, \(fullPack ? "default pack (caption, purify, classify)" : "classifier-only pack"), "
            + "\(threads) engine thread(s) in all, OPENBLAS_CORETYPE=\(ProcessInfo.processInfo.environment["OPENBLAS_CORETYPE"] ?? "<unset>")")
    print("| store | nodes | seconds | images/s | jobs per node |")
    print("|---|---:|---:|---:|---|")
    let runs: [(store: String, nodes: Int)] = [("sqlite", 1)] + nodeCounts.map { ("postgres", $0) }
    for (i, run) in runs.enumerated() {
        let db = run.store == "postgres" ? try TestDatabase(adminURL: admin) : nil
        defer { db?.drop() }
        let (seconds, spread) = try timeFleet(
            nodes: run.nodes, database: db?.urlText, pack: pack, work: work + "/run-\(i)", blobs: blobs,
            threads: max(1, threads / run.nodes))
        print(
            String(
                format: "| %@ | %d | %.2f | %.1f | %@ |", run.store, run.nodes, seconds, Double(count) / seconds,
                spread.sorted().map(String.init).joined(separator: " / ")))
    }
}

/// Seconds from the first push to the last result, and how many results each node published.
private func timeFleet(nodes n: Int, database: String?, pack: String, work: String, blobs: [[UInt8]], threads: Int) throws -> (Double, [Int]) {
    let daemons = try (0..<n).map { i -> DaemonProcess in
        var o = DaemonProcess.Options(mode: "pull", pack: pack)
        o.sections = [
            "daemon": ["log_level": "\"warning\"", "threads": "\(threads)", "node": "\"bench-\(i)\"", "state_dir": "\"\(work)/node-\(i)\""],
            "pipeline": ["queue_capacity": "64", "max_batch": "32", "max_wait_ms": "2"],
            "ingest": ["max_backlog": "128"],
            "store": ["keep_purified": "false"]
        ]
        o.database = database
        let d = try DaemonProcess(directory: work + "/node-\(i)", options: o)
        try d.start()
        return d
    }
    defer { for d in daemons { d.kill() } }
    let context = try ZMQContext()
    let subs = try daemons.map { d -> ZMQSocket in
        let s = try ZMQSocket(context, .sub)
        try s.subscribe(topic: "result")
        try s.connect(d.resultsEndpoint)
        return s
    }
    // Each subscription is live before the clock starts: probe each node directly until one returns.
    for (d, sub) in zip(daemons, subs) {
        let probe = try ZMQSocket(context, .push)
        try probe.connect(d.ingestEndpoint)
        var live = false
        for k in 0..<100 where !live {
            try probe.send([Array(#"{"id":"probe-\#(d.options.daemon["node"]!.filter { $0 != "\"" })-\#(k)"}"#.utf8), blobs[0]])
            if let m = try sub.receive(timeoutMs: 300), m.frames.count == 2 { live = true }
        }
        while (try sub.receive(timeoutMs: 300)) != nil {}
        probe.close()
    }
    let push = try ZMQSocket(context, .push)
    for d in daemons { try push.connect(d.ingestEndpoint) }
    Thread.sleep(forTimeInterval: 0.3)  // every connection up, so round-robin includes every node
    let start = Date()
    let sender = Thread { for (i, b) in blobs.enumerated() { try? push.send([Array(#"{"id":"job-\#(i)"}"#.utf8), b]) } }
    sender.start()
    var perNode = [Int](repeating: 0, count: n)
    let poller = subs
    while perNode.reduce(0, +) < blobs.count, Date().timeIntervalSince(start) < 1800 {
        for (i, sub) in poller.enumerated() {
            while let m = try sub.receive(timeoutMs: 0), m.frames.count == 2 {
                if let obj = try? JSONSerialization.jsonObject(with: Data(m.frames[1])) as? [String: Any],
                    (obj["id"] as? String)?.hasPrefix("job-") == true
                {
                    perNode[i] += 1
                }
            }
        }
        Thread.sleep(forTimeInterval: 0.002)
    }
    let seconds = Date().timeIntervalSince(start)
    for d in daemons { _ = d.terminate(timeout: 60) }
    guard perNode.reduce(0, +) == blobs.count else { throw BenchError.reference("fleet of \(n): \(perNode.reduce(0, +)) of \(blobs.count) results") }
    return (seconds, perNode)
}

/// The store's own ceiling: `writers` threads (each a node with its own connection pool, as N lgapd
/// would be) run the whole job lifecycle against PostgreSQL with no model at all — accept a batch,
/// claim it, record the stage, finish it with a result — for `seconds`. Jobs per second over all
/// writers: what a fleet can sustain before the store, not the models, limits it.
func runStoreCeiling(admin: String, writers counts: [Int], seconds: Double, batch: Int) throws {
    let png = try ImageCodec.encodePNG(RGBImage(width: 32, height: 32, pixels: [UInt8](repeating: 128, count: 32 * 32 * 3)))
    let sha = SHA256.hex(png)
    let params = PurificationParameters(strength: 0.1, steps: 50, guidance: 3, seed: 1, ensemble: 5)
    print("\n# PostgreSQL store ceiling — job lifecycle without models (insert, claim, stage, finish), batches of \(batch)")
    print("| writers | jobs | seconds | jobs/s | ms per job per writer |")
    print("|---:|---:|---:|---:|---:|")
    for n in counts {
        let db = try TestDatabase(adminURL: admin)
        defer { db.drop() }
        _ = try PostgresJobStore(url: db.url, passwordFile: nil, migrate: true)
        let done = LockedCounter()
        let failures = LockedCounter()
        let group = DispatchGroup()
        let start = Date()
        for w in 0..<n {
            group.enter()
            Thread {
                defer { group.leave() }
                do {
                    let store = try PostgresJobStore(url: db.url, passwordFile: nil, migrate: false)
                    let node = "writer-\(w)"
                    let info = RunInfo(version: "bench", node: node, host: "bench", pid: 0, config: "{}", pack: "none", stages: [.decode, .classify])
                    let run = try store.beginRun(info)
                    var k = 0
                    while Date().timeIntervalSince(start) < seconds {
                        let jobs = (0..<batch).map { i in
                            JobRecord(
                                id: "\(node)-\(k + i)", node: node, receivedAt: Date(), runId: run, mode: .router, peer: nil, input: png,
                                inputSha256: sha, inputFormat: .png, width: 32, height: 32, label: nil, meta: nil, requestedParams: nil,
                                params: params, cost: 1)
                        }
                        k += batch
                        _ = try store.insertAccepted(jobs)
                        let claimed = try store.claim(node: node, limit: batch, isolated: false)
                        try store.setStage(.classify, ids: claimed.map(\.id), node: node)
                        let results = claimed.map { j -> JobResult in
                            var r = JobResult(
                                id: j.id, status: .done, stages: [.decode, .classify], stagesRun: [.decode, .classify], inputSha256: sha, params: params,
                                timingsMs: ["classify": 1])
                            r.label = "cat"; r.labelIndex = 3; r.confidence = 0.9
                            return r
                        }
                        let finished = try store.finish(results, run: run, node: node)
                        done.add(finished.filter { $0 }.count)
                    }
                } catch {
                    failures.add(1)
                    FileHandle.standardError.write(Data("writer \(w): \(error)\n".utf8))
                }
            }.start()
        }
        group.wait()
        let elapsed = Date().timeIntervalSince(start)
        guard failures.value == 0 else { throw BenchError.reference("\(failures.value) writers failed") }
        print(
            String(
                format: "| %d | %d | %.1f | %.0f | %.3f |", n, done.value, elapsed, Double(done.value) / elapsed,
                1000 * elapsed * Double(n) / Double(max(done.value, 1))))
    }
}

final class LockedCounter: @unchecked Sendable {
    private let lock = NSLock()
    private var n = 0
    func add(_ k: Int) { lock.lock(); n += k; lock.unlock() }
    var value: Int { lock.lock(); defer { lock.unlock() }; return n }
}
