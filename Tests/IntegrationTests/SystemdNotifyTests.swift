// systemd's Type=notify protocol as lgapd speaks it, read from a datagram socket of the test's own
// passed as NOTIFY_SOCKET: READY=1 (with STATUS= and MAINPID=) once serving, WATCHDOG=1 at least every
// WATCHDOG_USEC while healthy, STATUS= updates, STOPPING=1 on SIGTERM, then exit 0.
import Foundation
import JobModel
import ServiceHarness
import XCTest

final class SystemdNotifyTests: ServiceTestCase {
    func testReadyWatchdogStatusAndStopping() throws {
        let notify = try NotifySocket(path: tmp + "/notify.sock")
        var options = DaemonProcess.Options(mode: "pull", pack: Self.defaultPack)
        options.environment = ["NOTIFY_SOCKET": notify.path, "WATCHDOG_USEC": "1000000"]
        let daemon = try startDaemon(options)

        let (ready, early) = notify.receive(until: { $0.contains("READY=1") }, timeout: 30)
        guard let ready else { return XCTFail("no READY=1 datagram; got \(early)\n\(daemon.logTail)") }
        let fields = ready.split(separator: "\n").map(String.init)
        XCTAssertTrue(fields.contains("READY=1"), ready)
        XCTAssertTrue(fields.contains("MAINPID=\(daemon.pid)"), "MAINPID must be lgapd's pid \(daemon.pid): \(ready)")
        XCTAssertTrue(fields.contains { $0.hasPrefix("STATUS=") && $0.contains(daemon.ingestEndpoint) }, ready)
        XCTAssertFalse(early.dropLast().contains { $0.contains("WATCHDOG=1") || $0.contains("STOPPING=1") }, "before READY=1: \(early)")

        // WATCHDOG=1 keeps coming, never more than WATCHDOG_USEC apart; STATUS= updates come too.
        var pings: [Date] = [Date()]
        var statusUpdates: [String] = []
        let deadline = Date(timeIntervalSinceNow: 15)
        while pings.count < 6 && Date() < deadline {
            guard let d = notify.receive(timeout: 3) else { break }
            for line in d.split(separator: "\n") {
                if line == "WATCHDOG=1" { pings.append(Date()) }
                if line.hasPrefix("STATUS=") { statusUpdates.append(String(line)) }
            }
        }
        XCTAssertGreaterThanOrEqual(pings.count - 1, 5, "WATCHDOG=1 datagrams")
        let gaps = zip(pings.dropFirst(), pings).map { $0.timeIntervalSince($1) }
        XCTAssertLessThan(gaps.max() ?? .infinity, 1.0, "watchdog gaps \(gaps): systemd would kill lgapd")
        XCTAssertTrue(statusUpdates.contains { $0.contains("queues:") }, "periodic STATUS= (status_interval_s = 1): \(statusUpdates)")

        daemon.signal(SIGTERM)
        let (stopping, afterTerm) = notify.receive(until: { $0.contains("STOPPING=1") }, timeout: 30)
        XCTAssertNotNil(stopping, "no STOPPING=1 after SIGTERM; got \(afterTerm)")
        XCTAssertEqual(daemon.waitForExit(timeout: 30), 0, daemon.logTail)
    }

    /// WATCHDOG_USEC=0 is not a watchdog (sd_watchdog_enabled refuses it): no WATCHDOG=1 flood, while
    /// the periodic STATUS= still comes.
    func testZeroWatchdogUsecDisablesTheWatchdog() throws {
        let notify = try NotifySocket(path: tmp + "/notify.sock")
        var options = DaemonProcess.Options(mode: "pull", pack: Self.defaultPack)
        options.environment = ["NOTIFY_SOCKET": notify.path, "WATCHDOG_USEC": "0"]
        let daemon = try startDaemon(options)
        let (ready, early) = notify.receive(until: { $0.contains("READY=1") }, timeout: 30)
        XCTAssertNotNil(ready, "no READY=1; got \(early.prefix(5))")
        let (status, read) = notify.receive(until: { $0.contains("queues:") }, timeout: 15)
        XCTAssertNotNil(status, "no periodic STATUS=")
        XCTAssertFalse(read.contains { $0.contains("WATCHDOG=1") }, "\(read.filter { $0.contains("WATCHDOG=1") }.count) WATCHDOG=1 datagrams")
        stop(daemon)
    }
}
