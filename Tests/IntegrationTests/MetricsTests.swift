// lgapd's HTTP endpoints scraped during a run: /metrics counts every job by status and reason and
// times every stage, /readyz and /livez answer 200 while serving, and unknown paths and methods are
// refused. (/readyz's 503 during a store outage is checked by FleetTests.)
import Foundation
import JobModel
import Messaging
import ServiceHarness
import XCTest

final class MetricsTests: ServiceTestCase {
    func testScrapeDuringARun() throws {
        let (port, _) = try DaemonProcess.freePorts()
        var options = DaemonProcess.Options(mode: "router", pack: try fastPack())
        options.sections["metrics"] = ["endpoint": "\"127.0.0.1:\(port)\""]
        let daemon = try startDaemon(options)
        XCTAssertEqual(try HTTPProbe.get(port: port, path: "/readyz").status, 200)
        XCTAssertEqual(try HTTPProbe.get(port: port, path: "/livez").status, 200)
        let png = try TestImages.png
        let p = try producer(daemon, .dealer)
        for i in 0..<30 { XCTAssertEqual(try p.submit(header: ["id": "m-\(i)"], image: png).status, .accepted) }
        XCTAssertEqual(try p.submit(header: ["id": "m-0"], image: png).status, .duplicate)
        XCTAssertEqual(try p.submit(header: ["id": "m-empty"], image: []).reason, .emptyImage)
        let store = try store(daemon)
        try waitUntil("30 jobs done", timeout: 60, daemon: daemon) { (try store.counts()["done"] ?? 0) == 30 }
        var metrics = ""
        // Counters move as jobs finish; gauges are sampled by the monitor every tick (1 s here).
        try waitUntil("metrics caught up", timeout: 10, daemon: daemon) {
            metrics = try HTTPProbe.get(port: port, path: "/metrics").body
            return HTTPProbe.sample(metrics, #"lgap_jobs_total{status="done",reason=""}"#) == 30
                && HTTPProbe.sample(metrics, "lgap_results_published_total") == 30
        }
        XCTAssertEqual(HTTPProbe.sample(metrics, #"lgap_jobs_total{status="accepted",reason=""}"#), 30, metrics)
        XCTAssertEqual(HTTPProbe.sample(metrics, #"lgap_jobs_total{status="duplicate",reason="duplicate_id"}"#), 1, metrics)
        XCTAssertEqual(HTTPProbe.sample(metrics, #"lgap_jobs_total{status="rejected",reason="empty_image"}"#), 1, metrics)
        XCTAssertEqual(HTTPProbe.sample(metrics, #"lgap_stage_duration_seconds_count{stage="classify"}"#), 30, metrics)
        XCTAssertEqual(HTTPProbe.sample(metrics, #"lgap_queue_capacity{stage="decode"}"#), 8, metrics)
        XCTAssertEqual(HTTPProbe.sample(metrics, "lgap_ready"), 1, metrics)
        XCTAssertTrue(metrics.contains(#"lgap_pack_info{name="cifar10-mini""#), metrics)
        XCTAssertTrue(metrics.contains("# TYPE lgap_stage_duration_seconds histogram"), metrics)
        XCTAssertEqual(try HTTPProbe.get(port: port, path: "/nope").status, 404)
        stop(daemon)
    }

    func testMetricsEndpointThatCannotBindStopsTheStart() throws {
        let blocker = try DaemonProcess.freePorts().0
        // Take the port with a listening socket of our own, then ask lgapd for it.
        let server = try ZMQSocket(context, .rep)
        try server.bind("tcp://127.0.0.1:\(blocker)")
        defer { server.close() }
        let dir = tmp + "/blocked"
        try FileManager.default.createDirectory(atPath: dir, withIntermediateDirectories: true)
        let (status, stderr) = try DaemonProcess.runToExit(
            arguments: ["--metrics", "127.0.0.1:\(blocker)", "--db", dir + "/db.sqlite", "--pack", try fastPack()], directory: dir)
        XCTAssertNotEqual(status, 0, stderr)
        XCTAssertTrue(stderr.lowercased().contains("address"), stderr)
    }
}
