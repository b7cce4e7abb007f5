// `lgap-bench daemon`: lgapd's own overhead. A classifier-only pack (the default pack's classifier and
// pack.json, no captioner/purifier) is served by a real lgapd; N images are pushed as fast as the
// socket takes them and timed until the last result arrives. The same images go through
// `lgapctl classify` (the bare classifier, same batch size). Prints both throughputs, the ratio and
// the per-job time spent outside the model. With --baseline DIR, another build's lgapd and lgapctl
// (e.g. the previous commit's) run the same work in the same process, interleaved, for a fair ratio.
import Foundation
import Locations
import Messaging
import ServiceHarness

func runDaemonBench(
    images count: Int, threads: Int, batch: Int, baseline: String?, metrics: Bool = false, rounds: Int = 2, legacyBaseline: Bool = false
) throws {
    let root = repoRoot()
    let bin = URL(fileURLWithPath: CommandLine.arguments[0]).resolvingSymlinksInPath().deletingLastPathComponent().path
    let work = NSTemporaryDirectory() + "lgap-daemon-bench-\(getpid())"
    let fm = FileManager.default
    try fm.createDirectory(atPath: work + "/pack", withIntermediateDirectories: true)
    defer { try? fm.removeItem(atPath: work) }
    try fm.createSymbolicLink(atPath: work + "/pack/classifier", withDestinationPath: root + "/models/cifar10-mini/classifier")
    try fm.copyItem(atPath: root + "/models/cifar10-mini/pack.json", toPath: work + "/pack/pack.json")
    let files = try benchImageFiles(count: count, work: work)
    let blobs = try files.map { [UInt8](try Data(contentsOf: URL(fileURLWithPath: $0))) }
    let listDir = work + "/list"
    try fm.createDirectory(atPath: listDir, withIntermediateDirectories: true)
    for (i, f) in files.enumerated() { try fm.createSymbolicLink(atPath: listDir + String(format: "/%06d.jpg", i), withDestinationPath: f) }

    var builds = [(metrics ? "this build, /metrics scraped every 1 s" : "this build", bin)]
    if let baseline { builds.append(("baseline \(baseline)", baseline)) }
    print(
        "# lgap-bench daemon — \(count) CIFAR-10 images, classifier-only pack, batch \(batch), \(threads) thread(s), "
            + "OPENBLAS_CORETYPE=\(ProcessInfo.processInfo.environment["OPENBLAS_CORETYPE"] ?? "<unset>")")
    print("| build | path | seconds | images/s |")
    print("|---|---|---:|---:|")
    var rates: [String: [Double]] = [:]
    // Rounds with the builds interleaved (the order alternating), so a slow moment of the machine does
    // not favour one build; the ratio is reported per round and as the median.
    for round in 0..<(baseline == nil ? 1 : rounds) {
        let order = round % 2 == 0 ? builds : builds.reversed()
        for (name, dir) in order {
            let classify = try timeClassify(lgapctl: dir + "/lgapctl", pack: work + "/pack", list: listDir, batch: batch)
            let served = try timeDaemon(
                lgapd: dir + "/lgapd", pack: work + "/pack", work: work + "/run-\(round)-\(name.count)", blobs: blobs,
                threads: threads, batch: batch, legacy: legacyBaseline && dir != bin, metrics: metrics && dir == bin)
            rates[name, default: []].append(Double(count) / served)
            print(
                String(format: "| %@ | lgapctl classify (process start, decode, classify, JSON out) | %.2f | %.1f |", name, classify, Double(count) / classify))
            print(
                String(
                    format: "| %@ | lgapd: producer → PULL → store → decode → classify → store → XPUB → consumer | %.2f | %.1f |",
                    name, served, Double(count) / served))
            print(String(format: "| %@ | per-job time outside the model | %.3f ms | |", name, 1000 * (served - classify) / Double(count)))
        }
    }
    if let base = rates.first(where: { !$0.key.hasPrefix("this build") })?.value, let ours = rates[builds[0].0] {
        let a = ours.reduce(0, +) / Double(ours.count), b = base.reduce(0, +) / Double(base.count)
        let ratios = zip(ours, base).map { $0 / $1 }.sorted()
        let median = ratios.count % 2 == 1 ? ratios[ratios.count / 2] : (ratios[ratios.count / 2 - 1] + ratios[ratios.count / 2]) / 2
        print(String(format: "\nthis build / baseline daemon throughput: %.3f (%.1f vs %.1f images/s, mean of %d rounds)", a / b, a, b, ours.count))
        print("per round: \(ratios.map { String(format: "%.3f", $0) }.joined(separator: " ")); median \(String(format: "%.3f", median))")
    }
}

private func timeClassify(lgapctl: String, pack: String, list: String, batch: Int) throws -> Double {
    let t0 = Date()
    let ctl = Process()
    ctl.executableURL = URL(fileURLWithPath: lgapctl)
    ctl.arguments = ["classify", "--pack", pack, "--batch", String(batch), "--json", list]
    ctl.standardOutput = FileHandle.nullDevice
    try ctl.run()
    ctl.waitUntilExit()
    return Date().timeIntervalSince(t0)
}

/// Seconds from the first push to the last result, lgapd in pull mode at full speed.
/// `legacy`: a build from before [ingest] max_backlog existed (the baseline) gets a config without it.
private func timeDaemon(
    lgapd: String, pack: String, work: String, blobs: [[UInt8]], threads: Int, batch: Int, legacy: Bool, metrics: Bool
) throws -> Double {
    var options = DaemonProcess.Options(mode: "pull", pack: pack)
    options.sections = [
        "daemon": ["log_level": "\"warning\"", "threads": "\(threads)"],
        "pipeline": ["queue_capacity": "\(max(16, 2 * batch))", "max_batch": "\(batch)", "max_wait_ms": "2"],
        "store": ["keep_purified": "false"]
    ]
    if !legacy { options.sections["ingest"] = ["max_backlog": "\(max(64, 4 * batch))"] } else { options.sections["daemon"]?["node"] = "" }
    // --metrics: this build serves /metrics while it runs (and is scraped every second), to price it.
    var scraper: Thread?
    let scraping = DispatchSemaphore(value: 0)
    if metrics {
        let port = try DaemonProcess.freePorts().0
        options.sections["metrics"] = ["endpoint": "\"127.0.0.1:\(port)\""]
        scraper = Thread { while scraping.wait(timeout: .now() + 1) == .timedOut { _ = try? HTTPProbe.get(port: port, path: "/metrics") } }
    }
    defer { scraping.signal() }
    let daemon = try DaemonProcess(directory: work, options: options, executable: lgapd)
    try daemon.start()
    scraper?.start()
    defer { daemon.kill() }
    let context = try ZMQContext()
    let sub = try ZMQSocket(context, .sub)
    try sub.subscribe(topic: "result")
    try sub.connect(daemon.resultsEndpoint)
    let push = try ZMQSocket(context, .push)
    try push.connect(daemon.ingestEndpoint)
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
    while got < blobs.count, Date().timeIntervalSince(start) < 600 {
        // Match on the parsed id: the result's keys are sorted, so "id" is not near the front.
        if let m = try sub.receive(timeoutMs: 1000), m.frames.count == 2,
            let obj = try? JSONSerialization.jsonObject(with: Data(m.frames[1])) as? [String: Any],
            (obj["id"] as? String)?.hasPrefix("bench-") == true
        {
            got += 1
        }
    }
    let seconds = Date().timeIntervalSince(start)
    _ = daemon.terminate(timeout: 60)
    guard got == blobs.count else { throw BenchError.reference("\(lgapd): \(got) of \(blobs.count) results") }
    return seconds
}

/// `count` image files for a benchmark: test-dev JPEGs when the data folder has them (extracted into
/// `work`, taken at an even stride so every class is present), else the default pack's samples repeated.
func benchImageFiles(count: Int, work: String) throws -> [String] {
    let root = repoRoot()
    let fm = FileManager.default
    var files: [String] = []
    let archive = Locations.data + "/data/cifar10/test-dev.tar.gz"
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
