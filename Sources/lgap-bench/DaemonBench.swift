// `lgap-bench daemon`: lgapd's own overhead. A classifier-only pack (the default pack's classifier and
// pack.json, no captioner/purifier) is served by a real lgapd; N images are pushed as fast as the
// socket takes them and timed until the last result arrives. The same images go through
// `lgapctl classify` (the bare classifier, same batch size). Prints both throughputs, the ratio and
// the per-job time spent outside the model.
import CZeroMQ
import Foundation
import Messaging

func runDaemonBench(images count: Int, threads: Int, batch: Int) throws {
    let root = repoRoot()
    let bin = URL(fileURLWithPath: CommandLine.arguments[0]).resolvingSymlinksInPath().deletingLastPathComponent().path
    let work = NSTemporaryDirectory() + "lgap-daemon-bench-\(getpid())"
    let fm = FileManager.default
    try fm.createDirectory(atPath: work + "/pack", withIntermediateDirectories: true)
    try fm.createSymbolicLink(atPath: work + "/pack/classifier", withDestinationPath: root + "/models/cifar10-mini/classifier")
    try fm.copyItem(atPath: root + "/models/cifar10-mini/pack.json", toPath: work + "/pack/pack.json")
    let files = try benchImageFiles(count: count, work: work)
    let blobs = try files.map { [UInt8](try Data(contentsOf: URL(fileURLWithPath: $0))) }

    // 1. lgapctl classify over the same files (listed in a folder of links so the order is the same).
    let listDir = work + "/list"
    try fm.createDirectory(atPath: listDir, withIntermediateDirectories: true)
    for (i, f) in files.enumerated() { try fm.createSymbolicLink(atPath: listDir + String(format: "/%06d.jpg", i), withDestinationPath: f) }
    let t0 = Date()
    let ctl = Process()
    ctl.executableURL = URL(fileURLWithPath: bin + "/lgapctl")
    ctl.arguments = ["classify", "--pack", work + "/pack", "--batch", String(batch), "--json", listDir]
    ctl.standardOutput = FileHandle.nullDevice
    try ctl.run(); ctl.waitUntilExit()
    let classifySeconds = Date().timeIntervalSince(t0)

    // 2. lgapd, pull mode, a PUSH producer at full speed and a SUB consumer.
    let config = work + "/lgapd.toml"
    try """
        [daemon]
        log_level = "warning"
        threads = \(threads)
        [pipeline]
        queue_capacity = \(max(16, 2 * batch))
        max_batch = \(batch)
        max_wait_ms = 2
        [store]
        keep_purified = false
        """.write(toFile: config, atomically: true, encoding: .utf8)
    let port = 31555
    let daemon = Process()
    daemon.executableURL = URL(fileURLWithPath: bin + "/lgapd")
    daemon.arguments = ["--config", config, "--db", work + "/db.sqlite", "--pack", work + "/pack",
                        "--ingest", "tcp://127.0.0.1:\(port)", "--results", "tcp://127.0.0.1:\(port + 1)"]
    let log = work + "/lgapd.log"
    fm.createFile(atPath: log, contents: nil)
    daemon.standardError = try FileHandle(forWritingTo: URL(fileURLWithPath: log))
    try daemon.run()
    defer { if daemon.isRunning { kill(daemon.processIdentifier, SIGKILL) } }
    Thread.sleep(forTimeInterval: 1.5)
    let context = try ZMQContext()
    let sub = try ZMQSocket(context, .sub)
    try sub.set(ZMQ_SUBSCRIBE, string: "result")
    try sub.connect("tcp://127.0.0.1:\(port + 1)")
    let push = try ZMQSocket(context, .push)
    try push.connect("tcp://127.0.0.1:\(port)")
    // Wait until the subscription is live: send probes until one comes back.
    var live = false
    for n in 0..<50 where !live {
        try push.send([Array(#"{"id":"probe-\#(n)"}"#.utf8), blobs[0]])
        if let m = try sub.receive(timeoutMs: 200), m.frames.count == 2 { live = true }
    }
    while (try sub.receive(timeoutMs: 300)) != nil {}
    let start = Date()
    let sender = Thread {
        for (i, b) in blobs.enumerated() { try? push.send([Array(#"{"id":"bench-\#(i)"}"#.utf8), b]) }
    }
    sender.start()
    var got = 0
    while got < count, Date().timeIntervalSince(start) < 600 {
        // Match on the parsed id: the result's keys are sorted, so "id" is not near the front.
        if let m = try sub.receive(timeoutMs: 1000), m.frames.count == 2,
           let obj = try? JSONSerialization.jsonObject(with: Data(m.frames[1])) as? [String: Any],
           (obj["id"] as? String)?.hasPrefix("bench-") == true { got += 1 }
    }
    let daemonSeconds = Date().timeIntervalSince(start)
    kill(daemon.processIdentifier, SIGTERM)
    daemon.waitUntilExit()
    let a = Double(count) / classifySeconds, d = Double(got) / daemonSeconds
    print("# lgap-bench daemon — \(count) CIFAR-10 images, classifier-only pack, batch \(batch), \(threads) thread(s)")
    print("| path | seconds | images/s |")
    print("|---|---:|---:|")
    print(String(format: "| lgapctl classify (process start, decode, classify, JSON out) | %.2f | %.1f |", classifySeconds, a))
    print(String(format: "| lgapd: producer → PULL → decode → classify → SQLite → PUB → consumer | %.2f | %.1f |", daemonSeconds, d))
    print(String(format: "daemon / classify throughput: %.0f%%; per-job time outside the model: %.2f ms (%d of %d results)",
                 100 * d / a, 1000 * (daemonSeconds - classifySeconds) / Double(count), got, count))
    try? fm.removeItem(atPath: work)
}

/// `count` image files for a benchmark: test-dev JPEGs when ../shared is there (extracted into `work`,
/// taken at an even stride so every class is present), else the default pack's samples repeated.
func benchImageFiles(count: Int, work: String) throws -> [String] {
    let root = repoRoot()
    let fm = FileManager.default
    var files: [String] = []
    let archive = root + "/../shared/data/cifar10/test-dev.tar.gz"
    if fm.fileExists(atPath: archive) {
        let p = Process()
        p.executableURL = URL(fileURLWithPath: "/usr/bin/env")
        p.arguments = ["tar", "xzf", archive, "-C", work]
        try p.run(); p.waitUntilExit()
        files = (fm.enumerator(atPath: work + "/test")?.allObjects as? [String] ?? []).filter { $0.hasSuffix(".jpg") }.sorted()
            .map { work + "/test/" + $0 }
    }
    if files.isEmpty {
        files = try fm.contentsOfDirectory(atPath: root + "/models/cifar10-mini/samples").sorted().map { root + "/models/cifar10-mini/samples/" + $0 }
    }
    if files.count > count {
        let stride = files.count / count
        files = (0..<count).map { files[$0 * stride] }
    }
    return (0..<count).map { files[$0 % files.count] }
}
