// lgap-stress overload: producers push far faster than the pipeline (pull mode) for a while; samples
// lgapd's RSS and the stages' queue depths, then checks that every message a producer managed to send
// was done (pull-mode producers block instead of losing jobs) and that memory stayed under the bound
// the configuration implies.
import CZeroMQ
import Foundation
import Messaging
import Provenance

struct OverloadOptions {
    var seconds: Double = 300
    var images: [[UInt8]]
    var lgapd: String
    var pack: String?
    var workdir: String
    var port = 30555
    var producers = 2
}

func runOverload(_ o: OverloadOptions) throws {
    let db = o.workdir + "/overload.sqlite"
    for suffix in ["", "-wal", "-shm"] { try? FileManager.default.removeItem(atPath: db + suffix) }
    let ingest = "tcp://127.0.0.1:\(o.port)", results = "tcp://127.0.0.1:\(o.port + 1)"
    var args = ["--db", db, "--ingest", ingest, "--results", results, "--ingest-mode", "pull", "--log-level", "warning"]
    if let pack = o.pack { args += ["--pack", pack] }
    let daemon = DaemonRunner(binary: o.lgapd, arguments: args, logPath: o.workdir + "/overload-lgapd.log")
    try daemon.start()
    let baseRSS = daemon.rssKiB ?? 0
    let context = try ZMQContext()
    let sent = Shared(0)
    let stop = Shared(false)
    let done = DispatchGroup()
    for p in 0..<o.producers {
        done.enter()
        Thread {
            defer { done.leave() }
            guard let push = try? ZMQSocket(context, .push) else { return }
            try? push.set(ZMQ_SNDHWM, Int32(16))
            try? push.connect(ingest)
            var n = 0
            while !stop.get {
                let id = "ov-\(p)-\(n)"
                do {
                    // Blocking send with a timeout: when lgapd is full this blocks (backpressure).
                    try push.send([Array(#"{"id":"\#(id)"}"#.utf8), o.images[n % o.images.count]], timeoutMs: 500)
                    n += 1
                    sent.with { $0 += 1 }
                } catch {}
            }
        }.start()
    }
    var maxRSS = 0
    var samples: [(Double, Int, Int)] = []
    let t0 = Date()
    while Date().timeIntervalSince(t0) < o.seconds {
        Thread.sleep(forTimeInterval: 1)
        let rss = daemon.rssKiB ?? 0
        maxRSS = max(maxRSS, rss)
        samples.append((Date().timeIntervalSince(t0), rss, sent.get))
    }
    stop.with { $0 = true }
    done.wait()
    let totalSent = sent.get
    // Drain: every sent message must end up done (sent messages sit in ZeroMQ or SQLite, never dropped).
    let deadline = Date(timeIntervalSinceNow: 1800)
    var counts: [String: Int] = [:]
    while Date() < deadline {
        counts = try JobStore(readingAt: db).counts()
        if (counts["done"] ?? 0) + (counts["rejected"] ?? 0) + (counts["failed"] ?? 0) >= totalSent { break }
        Thread.sleep(forTimeInterval: 1)
    }
    let exit = daemon.terminate()
    let store = try JobStore(readingAt: db)
    let stats = try store.stageStats()
    let overCapacity = stats.filter { $0.highWater > $0.capacity }
    let elapsed = samples.last?.0 ?? 1
    let report: [String: Any] = [
        "seconds": Int(elapsed), "producers": o.producers, "sent": totalSent, "send_rate_per_s": Double(totalSent) / elapsed,
        "jobs": counts, "base_rss_mib": baseRSS / 1024, "max_rss_mib": maxRSS / 1024,
        "queues": stats.map { ["stage": $0.stage, "capacity": $0.capacity, "high_water": $0.highWater] },
        "daemon_exit_status": Int(exit),
    ]
    print(String(decoding: try JSONSerialization.data(withJSONObject: report, options: [.sortedKeys, .prettyPrinted]), as: UTF8.self))
    let lost = totalSent - (counts["done"] ?? 0) - (counts["rejected"] ?? 0) - (counts["failed"] ?? 0)
    if lost != 0 || !overCapacity.isEmpty { throw StressError("overload FAILED: \(lost) lost, queues over capacity: \(overCapacity.map(\.stage))") }
    print("overload passed: \(totalSent) sent in \(Int(elapsed)) s, none lost, queues within capacity, max RSS \(maxRSS / 1024) MiB")
}
