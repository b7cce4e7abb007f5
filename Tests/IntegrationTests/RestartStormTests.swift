// Pull mode across clean restarts: a producer PUSHes a steady stream while lgapd is stopped with
// SIGTERM and started again ten times. On each stop lgapd half-closes every connection, commits what
// is already on the wire and closes only when the peers have closed their side, so every message is
// either committed or still queued at the producer — every job the producer sent ends done exactly once.
import Foundation
import JobModel
import Messaging
import Provenance
import ServiceHarness
import XCTest

final class RestartStormTests: ServiceTestCase {
    func testSigtermRestartsMidStreamLoseNothing() throws {
        let daemon = try startDaemon(.init(mode: "pull", pack: try fastPack()))
        let results = try collector(daemon)  // reconnects by itself after each restart
        let png = try TestImages.png
        let total = 600
        let context = self.context!
        let endpoint = daemon.ingestEndpoint
        let sent = Counter()
        let producerDone = DispatchSemaphore(value: 0)
        let release = DispatchSemaphore(value: 0)
        let producer = Thread {
            defer { producerDone.signal() }
            guard let push = try? ZMQSocket(context, .push) else { return }
            try? push.setReconnectInterval(milliseconds: 20)
            try? push.connect(endpoint)
            let start = Date()
            for i in 0..<total {
                // ~100 jobs a second: the restarts land mid-stream.
                let due = start.addingTimeInterval(Double(i) / 100)
                if due > Date() { Thread.sleep(until: due) }
                try? push.send([Producer.json(["id": "storm-\(i)"]), png])  // blocks while lgapd is down (queued here)
                sent.add()
            }
            _ = release.wait(timeout: .now() + 300)  // keep the socket (and anything it still queues) until the end
            push.close()
        }
        producer.start()
        var stops = 0
        while stops < 10 {
            Thread.sleep(forTimeInterval: Double.random(in: 0.3...0.7))
            XCTAssertEqual(daemon.terminate(timeout: 30), 0, "stop \(stops)\n\(daemon.logTail)")
            stops += 1
            try daemon.start(samePorts: true)
        }
        let store = try store(daemon)
        let ids = (0..<total).map { "storm-\($0)" }
        try waitUntil("every job the producer sent done", timeout: 120, daemon: daemon) {
            try sent.value == total && (store.counts()["done"] ?? 0) >= total
        }
        for id in ids {
            XCTAssertEqual(try store.job(id)?.status, .done, id)
            XCTAssertLessThanOrEqual(results.results(for: id).count, 1, "\(id): published at most once")
        }
        XCTAssertEqual(try store.counts(), ["done": total], "nothing lost, nothing extra")
        stop(daemon)
        release.signal()
        producerDone.wait()
    }
}

final class Counter: @unchecked Sendable {
    private let lock = NSLock()
    private var n = 0
    func add() { lock.lock(); n += 1; lock.unlock() }
    var value: Int { lock.lock(); defer { lock.unlock() }; return n }
}
