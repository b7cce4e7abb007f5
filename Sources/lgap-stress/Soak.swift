// lgap-stress soak: streams jobs in router mode while lgapd is killed with SIGKILL at random
// moments and restarted; then checks that every acknowledged job was done exactly once, that no
// result was published twice, and that SQLite's integrity_check is ok.
import ArgumentParser
import Foundation
import JobModel
import Messaging
import Provenance
import ServiceHarness

struct Soak: ParsableCommand {
    static let configuration = CommandConfiguration(abstract: "Router-mode stream under random SIGKILLs: every acked job done exactly once.")
    @OptionGroup var common: Common
    @Option(help: "Jobs to send.") var jobs = 1000
    @Option(help: "SIGKILLs (at least).") var kills = 20
    @Option(help: "Producer pace, jobs per second (so the kills land while jobs stream).") var rate: Double = 20
    @Option(help: "max_attempts for the daemon (kills every 0.3–1.5 s make innocent jobs suspects far more often than real crashes).")
    var maxAttempts = 100
    var minGap: Double { 0.3 }
    var maxGap: Double { 1.5 }

    func run() throws { try runSoak(self) }
}

func runSoak(_ o: Soak) throws {
    let images = try o.common.loadImages()
    var options = DaemonProcess.Options(mode: "router", pack: o.common.packFolder)
    // Every kill makes the jobs in flight suspects (no crash journal after SIGKILL); they run alone next
    // and count an attempt only if the daemon dies again while they do. The kills here are far denser than
    // any real crash, so the limit is raised: this program tests that no acknowledged job is lost or done
    // twice; the limit itself is tested by PoisonTests.
    options.sections = ["pipeline": ["max_attempts": "\(o.maxAttempts)"], "daemon": ["log_level": "\"warning\""]]
    let daemon = try DaemonProcess(directory: try o.common.folder("soak"), options: options)
    try daemon.start()
    let db = daemon.database
    let ingest = daemon.ingestEndpoint, results = daemon.resultsEndpoint
    let context = try ZMQContext()

    // Results: count every id received (a duplicate is a failure).
    let received = Shared<[String: Int]>([:])
    let stop = Shared(false)
    let sub = try ZMQSocket(context, .sub)
    try sub.subscribe(topic: "result")
    try sub.connect(results)
    let subscriber = Thread {
        while true {
            if stop.get { break }
            guard let m = try? sub.receive(timeoutMs: 200), m.frames.count == 2,
                let obj = try? JSONSerialization.jsonObject(with: Data(m.frames[1])) as? [String: Any],
                let id = obj["id"] as? String
            else { continue }
            received.with { $0[id, default: 0] += 1 }
        }
    }
    subscriber.start()

    // Producer: one job at a time, resent with the same id until acknowledged (at-least-once).
    let acked = Shared<[String: String]>([:])
    let resends = Shared(0)
    let producerDone = DispatchSemaphore(value: 0)
    let producer = Thread {
        var dealer: ZMQSocket? = nil
        func fresh() -> ZMQSocket? {
            dealer?.close()
            guard let d = try? ZMQSocket(context, .dealer) else { return nil }
            try? d.connect(ingest)
            return d
        }
        dealer = fresh()
        let start = Date()
        for n in 0..<o.jobs {
            let due = start.addingTimeInterval(Double(n) / o.rate)
            if due > Date() { Thread.sleep(until: due) }
            let id = String(format: "soak-%06d", n)
            let header = Array(#"{"id":"\#(id)"}"#.utf8)
            let image = images[n % images.count]
            while true {
                guard let d = dealer else { dealer = fresh(); continue }
                do {
                    try d.send([header, image], timeoutMs: 1000)
                    if let reply = try d.receive(timeoutMs: 1500), let ack = reply.frames.last.flatMap(Ack.decode), ack.id == id {
                        acked.with { $0[id] = ack.status.rawValue }
                        break
                    }
                } catch {}
                // No ack (daemon down or restarting): a new socket drops anything queued, then resend.
                resends.with { $0 += 1 }
                dealer = fresh()
            }
        }
        producerDone.signal()
    }
    producer.start()

    // Killer: SIGKILL and restart at random moments while the producer runs (and until enough kills).
    var kills = 0
    while true {
        let finished = producerDone.wait(timeout: .now() + Double.random(in: o.minGap...o.maxGap)) == .success
        if finished && kills >= o.kills { break }
        if finished { producerDone.signal() }  // keep the signal for the next check
        daemon.kill()
        kills += 1
        try daemon.start(samePorts: true)
    }
    // Let the last start finish every accepted job.
    let deadline = Date(timeIntervalSinceNow: 600)
    var pending = Int.max
    while Date() < deadline {
        let counts = try StoreLocation(db).openForQueries().counts()
        pending = (counts["accepted"] ?? 0) + (counts["processing"] ?? 0)
        if pending == 0 { break }
        Thread.sleep(forTimeInterval: 0.5)
    }
    Thread.sleep(forTimeInterval: 1)
    let exit = daemon.terminate() ?? -1
    stop.with { $0 = true }
    Thread.sleep(forTimeInterval: 0.3)

    let store = try StoreLocation(db).openForQueries()
    var lost: [String] = [], notDone: [String] = []
    var attemptsOver1 = 0, attemptsOver3 = 0
    let ackedIDs = acked.get
    for id in ackedIDs.keys.sorted() {
        guard let row = try store.job(id) else { lost.append(id); continue }
        if row.status != .done { notDone.append("\(id):\(row.status.rawValue)") }
        if row.attempts > 0 { attemptsOver1 += 1 }
        if row.attempts > 3 { attemptsOver3 += 1 }
    }
    let got = received.get
    let duplicates = got.filter { $0.value > 1 }.map(\.key)
    let integrity = try store.integrityCheck()
    let report: [String: Any] = [
        "jobs_sent": o.jobs, "jobs_acked": ackedIDs.count, "acks": Dictionary(grouping: ackedIDs.values, by: { $0 }).mapValues(\.count),
        "kills": kills, "daemon_starts": daemon.launches, "resends": resends.get, "lost": lost.count, "not_done": notDone.count,
        "jobs_run_alone_after_a_kill_that_died_again": attemptsOver1, "jobs_with_more_than_3_attempts": attemptsOver3, "max_attempts": o.maxAttempts,
        "results_received": got.count, "results_duplicated": duplicates.count,
        "integrity_check": integrity, "final_exit_status": Int(exit)
    ]
    try printReport(report)
    if !lost.isEmpty || !notDone.isEmpty || !duplicates.isEmpty || integrity != "ok" || ackedIDs.count != o.jobs || kills < o.kills {
        throw StressError("soak FAILED: lost \(lost.prefix(5)), not done \(notDone.prefix(5)), duplicated results \(duplicates.prefix(5))")
    }
    print("soak passed: \(ackedIDs.count) acknowledged jobs, \(kills) SIGKILLs, 0 lost, 0 duplicated, integrity ok")
}
